"""Retention sweeps: purging, on a schedule, what has outlived its purpose, and the operators' view of them."""
