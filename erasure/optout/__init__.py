"""Leaving: the opt-out form and API, submitting a request in one transaction, and its status page."""
