"""Erasure: leaving, revoking, purging, and proving it."""
