"""Pooled connections on a server, checked when they have rested; and `writing`, the write transaction."""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app import db
from app.db import make_engine, utcnow, writing
from app.models import ApiToken

TEST_PG = os.environ.get("OWNSTORY_TEST_DATABASE_URL", "").strip()
pg_only = pytest.mark.skipif(
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


@pg_only
def test_a_connection_back_moments_ago_is_used_without_a_ping(engine):
    first = backend_pid(engine)
    for _ in range(20):
        assert backend_pid(engine) == first
    assert engine.pings == []  # a new connection, then twenty checkouts: no round trip spent on them


@pg_only
def test_a_connection_cut_while_it_rested_is_replaced_before_anyone_uses_it(engine, monkeypatch):
    first = backend_pid(engine)
    cut(first)  # e.g. the server restarted, or a proxy closed an idle connection
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # as if it had rested past the limit
    pinged = len(engine.pings)

    second = backend_pid(engine)  # no error reaches the caller

    assert second != first
    assert len(engine.pings) > pinged


prepared_on_pg = pytest.mark.skipif(
    not TEST_PG, reason="psycopg's prepared statements on PostgreSQL: set OWNSTORY_TEST_DATABASE_URL (SQLite prepares "
                        "nothing to lose)")


def prepared_statements(session) -> int:
    return session.scalar(text("SELECT count(*) FROM pg_prepared_statements"))


@prepared_on_pg
def test_a_session_that_only_read_leaves_the_connections_prepared_statements_in_place(engine):
    # psycopg prepares a statement run five times on a connection, and forgets all of them on a ROLLBACK.
    with Session(engine) as session:
        for n in range(6):
            assert session.scalar(text("SELECT CAST(:n AS integer) + 1"), {"n": n}) == n + 1
        assert prepared_statements(session) >= 1
    # closed without a commit, as a page or an API check that only read is
    with Session(engine) as session:  # the pool's one connection again
        assert prepared_statements(session) >= 1, "the next statements on this connection would be planned afresh"


@prepared_on_pg
def test_a_session_that_wrote_and_was_not_committed_still_rolls_back(engine):
    with Session(engine) as session:
        session.execute(text("CREATE TEMPORARY TABLE scratch (n integer)"))  # the connection's own, while it lives
        session.execute(text("INSERT INTO scratch VALUES (1)"))
        assert session.scalar(text("SELECT to_regclass('pg_temp.scratch') IS NOT NULL"))
    with Session(engine) as session:
        assert session.scalar(text("SELECT to_regclass('pg_temp.scratch') IS NULL"))  # nothing of it was kept


@prepared_on_pg
def test_a_read_that_failed_is_rolled_back_and_the_connection_serves_the_next_session(engine):
    with Session(engine) as session:
        with pytest.raises(DBAPIError):
            session.execute(text("SELECT 1 / 0"))
    with Session(engine) as session:
        assert session.scalar(text("SELECT 2")) == 2


# --- writing -----------------------------------------------------------------------------------

def tokens_named(app, name: str) -> int:
    with app.extensions["ownstory_db"]["sessionmaker"]() as other:
        return other.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.name == name))


def new_token(name: str) -> ApiToken:
    return ApiToken(name=name, role="service", token_hash=uuid.uuid4().hex * 2, created_at=utcnow())


def test_writing_commits_the_block(app, session):
    with writing(session):
        session.add(new_token("kept"))
    assert not session.in_transaction()
    assert tokens_named(app, "kept") == 1


def test_writing_rolls_the_block_back_when_it_raises(app, session):
    with pytest.raises(RuntimeError), writing(session):
        session.add(new_token("dropped"))
        session.flush()
        raise RuntimeError("the block failed")
    assert tokens_named(app, "dropped") == 0


def test_writing_ends_the_open_read_and_locks_before_its_first_statement(app, session):
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    bind = session.get_bind()
    session.execute(select(ApiToken.id).limit(1))  # a read: the transaction has begun
    event.listen(bind, "before_cursor_execute", seen)
    try:
        with writing(session):
            session.execute(select(ApiToken.id).limit(1))
    finally:
        event.remove(bind, "before_cursor_execute", seen)
    if bind.dialect.name == "sqlite":
        assert statements[0] == "BEGIN IMMEDIATE"  # the earlier read ended: a new transaction, locked up front
    assert statements[-1].startswith("SELECT")


def sqlite_only(session) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL locks rows, and write_lock leaves it alone")


def test_write_lock_after_a_read_is_refused_at_once_not_under_load(app, session):
    """On SQLite a transaction that has read cannot safely become a writer: another writer's commit since its
    read makes its first write fail with "database is locked", whatever the busy timeout. Found at once."""
    sqlite_only(session)
    session.execute(select(ApiToken.id).limit(1))
    with pytest.raises(db.ReadBeforeLock):
        db.write_lock(session)
    session.rollback()


def test_write_lock_is_taken_at_begin_or_held_after_a_write(app, session):
    sqlite_only(session)
    db.write_lock(session)  # BEGIN IMMEDIATE
    session.execute(select(ApiToken.id).limit(1))
    db.write_lock(session)  # already held: nothing to do
    session.rollback()
    session.add(new_token("first a write"))
    session.flush()  # the write took the lock
    session.execute(select(ApiToken.id).limit(1))
    db.write_lock(session)
    session.rollback()


def test_ownstorys_database_files_are_readable_by_their_owner_only(tmp_path):
    path = tmp_path / "fresh.db"
    engine = make_engine(f"sqlite:///{path}", private=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x TEXT)"))
        conn.execute(text("INSERT INTO t VALUES ('a')"))
        files = [path, tmp_path / "fresh.db-wal", tmp_path / "fresh.db-shm"]
        assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o600" for f in files}
    engine.dispose()


def test_database_files_left_open_to_others_are_narrowed_at_start(tmp_path):
    path = tmp_path / "old.db"
    for name in ("old.db", "old.db-wal", "old.db-shm"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    make_engine(f"sqlite:///{path}", private=True).dispose()
    assert {oct(f.stat().st_mode & 0o777) for f in tmp_path.iterdir()} == {"0o600"}


def test_what_is_deleted_leaves_no_copy_in_the_file_or_the_write_ahead_log(tmp_path):
    path = tmp_path / "scrub.db"
    secret = "leaver-8f3a91@example.org"
    engine = make_engine(f"sqlite:///{path}", private=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT UNIQUE, bio TEXT)"))
        conn.execute(text("INSERT INTO people (email, bio) VALUES ('stays@example.org', 'x')"))
        conn.execute(text("INSERT INTO people (email, bio) VALUES (:e, :b)"), {"e": secret, "b": secret * 40})
    assert db.truncate_wal(engine)  # in the file now, as after any checkpoint
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM people WHERE email = :e"), {"e": secret})
    wal = tmp_path / "scrub.db-wal"
    assert secret.encode() in path.read_bytes() + wal.read_bytes()  # the old pages, until a checkpoint
    assert db.truncate_wal(engine)
    assert secret.encode() not in path.read_bytes() and wal.stat().st_size == 0
    engine.dispose()
