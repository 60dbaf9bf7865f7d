"""Loopback imitations of outside services, for tests that need a real HTTP peer."""
