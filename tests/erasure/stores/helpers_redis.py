"""Redis for the store tests: Debian's redis-server on a free loopback port (bench/redis_server.py), or a
clear skip where it is not installed (a failure in CI, whose .ci/run installs it)."""
from __future__ import annotations

import os

import pytest

from bench.redis_server import RedisServer, available
from erasure.stores.redis_kind import RedisStore

__all__ = ["RedisServer", "r", "redis_server", "require_redis_server", "store_of"]


def require_redis_server() -> None:
    if available():
        return
    if os.environ.get("CI"):
        pytest.fail("Debian's redis-server is not installed; .ci/run should have installed it")
    pytest.skip("Debian's redis-server is not installed (apt-get install redis-server); CI installs it and runs this")


def store_of(url: str, name: str = "cache", **sections: list[dict]) -> RedisStore:
    """A redis store as the data map would load it, its URL in the environment as url_env says."""
    raw = {"name": name, "kind": "redis", "url_env": "TEST_REDIS_URL", **sections}
    return RedisStore.load("datamap.toml", f"stores.{name}", raw, None, {"TEST_REDIS_URL": url})


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the store tests of the whole run."""
    require_redis_server()
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def r(redis_server):
    """A client of it, on an empty database."""
    client = redis_server.client()
    client.flushall()
    client.config_resetstat()
    yield client
    client.close()
