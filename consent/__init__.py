"""Consent: the networks a person let the platform reach, and the purposes they agreed to."""
