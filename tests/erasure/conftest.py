"""Fixtures for the erasure tests: a worker in the test's process, run by the test a drain at a time."""
from __future__ import annotations

import pytest

from erasure.engine.worker import Worker


@pytest.fixture
def worker(app):
    """The worker `flask worker` runs, on the test's app; closed, its steps under way finished, at the end."""
    w = Worker(app, threads=2)
    yield w
    w.close()
