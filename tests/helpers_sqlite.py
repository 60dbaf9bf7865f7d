"""Another writer at the worst moment, on SQLite: how tests find a read-then-write without the write lock."""
from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from app.db import LOCKED


@contextlib.contextmanager
def a_writer_commits_after_every_read(app) -> Iterator[list[str]]:
    """SQLite: another connection commits right after each read of a transaction that holds no write lock, as
    a busy worker or web process may. If that transaction then writes, it fails with "database is locked"
    whatever the busy timeout (its snapshot is stale): the race is met every time, not once in a thousand
    runs. Code that reads and then writes takes the lock first (`app.db.writing`, `write_lock`).

    Yields the reads it committed after. PostgreSQL locks rows and has no such failure: skipped there."""
    engine = app.extensions["ownstory_db"]["engine"]
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's snapshots: on PostgreSQL a write after a read waits for the row, it does not fail")
    # timeout=0: when another transaction holds the write lock, nobody can commit in between, and it moves on.
    other = sqlite3.connect(engine.url.database, isolation_level=None, timeout=0, check_same_thread=False)
    one_at_a_time = threading.Lock()
    after: list[str] = []

    def commit_after(conn, _cursor, statement: str, *_args) -> None:
        if conn.info.get(LOCKED) or not statement.lstrip()[:6].upper() == "SELECT":
            return
        with one_at_a_time, contextlib.suppress(sqlite3.OperationalError):
            # A commit that changes no row changes no snapshot; the header's user_version, unused here, does.
            (version,) = other.execute("PRAGMA user_version").fetchone()
            other.execute(f"PRAGMA user_version = {version + 1}")
            after.append(statement)

    event.listen(engine, "after_cursor_execute", commit_after)
    try:
        yield after
    finally:
        event.remove(engine, "after_cursor_execute", commit_after)
        other.close()
