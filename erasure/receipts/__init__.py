"""Deletion receipts: signing keys, issuing, the transparency log, and the receipt pages and API."""
