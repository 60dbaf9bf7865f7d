"""Pooled connections on a server: checked when they have rested, not on every checkout."""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text

from app import db
from app.db import make_engine

TEST_PG = os.environ.get("OWNSTORY_TEST_DATABASE_URL", "").strip()
pytestmark = pytest.mark.skipif(
    not TEST_PG, reason="PostgreSQL only: SQLite's connections are files, which no server can cut")


@pytest.fixture
def engine():
    name = f"pool_{uuid.uuid4().hex[:12]}"
    engine = make_engine(TEST_PG, pool_size=1, max_overflow=0, connect_args={"application_name": name})
    pings = []
    real_ping = engine.dialect.do_ping

    def counted_ping(dbapi_conn):
        pings.append(1)
        return real_ping(dbapi_conn)

    engine.dialect.do_ping = counted_ping
    engine.pings, engine.app_name = pings, name
    yield engine
    engine.dispose()


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT pg_backend_pid()"))


def cut(pid: int) -> None:
    admin = make_engine(TEST_PG)
    with admin.connect() as conn:
        assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_connection_back_moments_ago_is_used_without_a_ping(engine):
    first = backend_pid(engine)
    for _ in range(20):
        assert backend_pid(engine) == first
    assert engine.pings == []  # a new connection, then twenty checkouts: no round trip spent on them


def test_a_connection_cut_while_it_rested_is_replaced_before_anyone_uses_it(engine, monkeypatch):
    first = backend_pid(engine)
    cut(first)  # e.g. the server restarted, or a proxy closed an idle connection
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # as if it had rested past the limit
    pinged = len(engine.pings)

    second = backend_pid(engine)  # no error reaches the caller

    assert second != first
    assert len(engine.pings) > pinged
