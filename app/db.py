"""The database: one declarative base, an engine per app, and a session per request."""
from __future__ import annotations

import datetime as dt
import functools
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Annotated, cast

from flask import Flask, current_app, g
from sqlalchemy import DateTime, MetaData, String, Table, TypeDecorator, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker

# Constraint names are fixed so that Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator):
    """A timezone-aware timestamp that always comes back in UTC, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# Column aliases, in Warehouse's style.
uuid_pk = Annotated[str, mapped_column(String(36), primary_key=True, default=new_id)]
timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow)]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements (the rows come back as plain values, with no ORM on the path).

    SQLAlchemy types __table__ as any FromClause; every model here maps a Table."""
    return cast(Table, model.__table__)


LOCKED = "ownstory_write_locked"  # a SQLite connection's info: its transaction holds the write lock
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
WROTE = "ownstory_wrote"  # a PostgreSQL connection's info: its transaction sent something other than a SELECT
BUSY_TIMEOUT_MS = 30000  # how long a SQLite statement waits for a lock before it fails
# Connections a process keeps open once it has used them at once: at least a worker's threads (16 by default)
# and its scheduler. The pool opens them only as they are needed; one that comes back to a full pool is closed,
# and the next costs the server a process and psycopg the statements it had prepared on it. SQLAlchemy's 5
# made a 16-thread worker open 72 connections for 300 opt-outs.
POOL_SIZE = 20
PING_AFTER_IDLE = 1.0  # seconds a pooled connection may rest before it is checked at checkout


def make_engine(url: str, autocommit: bool = False, private: bool = False, **kwargs) -> Engine:
    """An engine with SQLite made safe for several threads and processes.

    Bound parameters (emails, tokens) are kept out of SQLAlchemy's error messages, which reach logs.
    `autocommit`: for callers whose every transaction is one statement (the platform stores): on a
    server, BEGIN and COMMIT would be two round trips more for each.
    `private`: Ownstory's own SQLite database; its files are readable by this user only (keep_private).
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        if private:
            keep_private(url)
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Let SQLAlchemy, not pysqlite, issue BEGIN, so BEGIN IMMEDIATE works.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # What is deleted is overwritten, not left in free pages: an opted-out person's rows must go.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            begin = conn.get_execution_options().get("sqlite_begin", "BEGIN")
            conn.exec_driver_sql(begin)
            conn.info[LOCKED] = begin == "BEGIN IMMEDIATE"

        @event.listens_for(engine, "before_cursor_execute")
        def _sqlite_note_write(conn, _cursor, statement, _params, _context, _executemany):
            # The first write of a deferred transaction takes the write lock too (write_lock's check).
            if not conn.info.get(LOCKED) and statement.lstrip()[:7].upper().startswith(WRITES):
                conn.info[LOCKED] = True

        return engine
    if autocommit:
        kwargs.setdefault("isolation_level", "AUTOCOMMIT")
    kwargs.setdefault("pool_size", POOL_SIZE)
    engine = create_engine(url, **kwargs)
    _ping_after_idle(engine)
    if engine.dialect.driver == "psycopg" and not autocommit:
        _end_reads_with_commit(engine)
    return engine


def keep_private(url: str) -> None:
    """Make a SQLite database's file 0600 before SQLite opens it, and narrow it and its -wal and -shm if wider.

    SQLite creates the -wal and -shm files with the database file's mode, so a file made 0600 keeps
    them 0600 too; files left 0644 by an older Ownstory are narrowed here, at start.
    """
    name = make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if not path.parent.is_dir():
        return  # SQLite says so, in its own words, when it opens the file
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with suppress(FileNotFoundError):
            if each.stat().st_mode & 0o077:
                each.chmod(0o600)


def truncate_wal(engine: Engine, wait_seconds: float = 2.0) -> bool:
    """SQLite: copy the write-ahead log into the database file and empty it. Elsewhere, nothing to do: True.

    After a person's records are deleted, the log still holds the pages as they were (their email,
    their reason) until a checkpoint copies the new ones over them; with secure_delete the database
    file holds no copy either. It waits for readers at most `wait_seconds` (writers wait meanwhile),
    and answers False if some were still reading the old pages then: a later call empties it.
    """
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(wait_seconds * 1000)}")
        try:
            busy, _frames, _copied = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.close()
    finally:
        raw.close()
    return busy == 0


def _ping_after_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling, as SQLAlchemy's pool_pre_ping, for connections that rested.

    pool_pre_ping pings at every checkout. A worker checks a connection out a dozen times a step,
    each time moments after it came back from a statement that worked: a round trip each that tells
    nothing. A connection that rested longer (the server may have restarted, a proxy may have cut
    it) is pinged, and replaced if the ping fails. One cut within the second is met by the next
    statement's error, after which SQLAlchemy replaces every pooled connection.
    """

    @event.listens_for(engine, "connect")  # a new connection has just answered
    @event.listens_for(engine, "checkin")  # a connection comes back from work that went through
    def _known_good(_dbapi_conn, record) -> None:
        record.info["known_good_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn, record, _proxy) -> None:
        if time.monotonic() - record.info.get("known_good_at", 0.0) < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool replaces the connection and checks out again (up to three times).
            raise DisconnectionError("a pooled connection no longer answers") from exc


def _end_reads_with_commit(engine: Engine) -> None:
    """End a transaction that only read with COMMIT rather than ROLLBACK (PostgreSQL through psycopg).

    psycopg prepares a statement once a connection has run it five times, so that PostgreSQL parses and plans
    it once; on any ROLLBACK it forgets every statement it prepared on that connection. A session closed after
    reading only (a page, an API check, the scheduler's tick) rolls back, and the next statements on that pooled
    connection are planned afresh: a worker's claim, planned every time, cost PostgreSQL as much to plan as to
    run. For a transaction whose every statement was a SELECT, COMMIT ends it the same way: it releases the same
    locks and changes nothing. A transaction that wrote, or whose statement failed, still rolls back.
    """
    import psycopg
    from psycopg.pq import TransactionStatus

    @event.listens_for(engine, "before_cursor_execute")
    def _note_write(conn, _cursor, statement, _params, _context, _executemany) -> None:
        if not conn.info.get(WROTE) and statement.lstrip()[:6].upper() != "SELECT":
            conn.info[WROTE] = True  # anything else counts as a write: a CTE, a SAVEPOINT, a SET

    @event.listens_for(engine, "rollback")
    def _commit_reads(conn) -> None:
        if conn.invalidated:
            return  # the connection was lost: SQLAlchemy rolls back what is left of it and replaces it
        dbapi_conn = conn.connection.dbapi_connection
        if conn.info.pop(WROTE, False) or dbapi_conn.info.transaction_status != TransactionStatus.INTRANS:
            return
        try:
            dbapi_conn.commit()  # psycopg's rollback() then finds nothing to end, and keeps what it prepared
        except psycopg.Error:
            pass  # e.g. the server went away just now: the rollback that follows meets it, as it would have

    @event.listens_for(engine, "commit")
    def _ended(conn) -> None:
        conn.info.pop(WROTE, None)


def dialect_insert(dialect: str):
    """The INSERT construct that can say ON CONFLICT on this database: PostgreSQL's or SQLite's."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@functools.cache
def upsert(table: Table, keys: tuple[str, ...], updated: tuple[str, ...], dialect: str):
    """INSERT INTO table ... ON CONFLICT (keys) DO UPDATE SET each of `updated` to the row inserted: built once per
    table and database, and run with one set of parameters a row. A multi-VALUES INSERT (.values([...])) is a
    statement SQLAlchemy cannot cache: it compiled one at every call."""
    statement = dialect_insert(dialect)(table)
    return statement.on_conflict_do_update(index_elements=[table.c[k] for k in keys],
                                           set_={name: statement.excluded[name] for name in updated})


def expire_written_past(session: Session, kinds: type | tuple[type, ...], which=lambda _obj: True) -> None:
    """A Core INSERT or UPDATE went past the ORM: the session's loaded `kinds` objects (those `which` picks) still
    hold the old values, so they are read again on their next use."""
    for loaded in [o for o in session.identity_map.values() if isinstance(o, kinds) and which(o)]:
        session.expire(loaded)


class ReadBeforeLock(RuntimeError):
    """write_lock came too late: the transaction has read without the lock, so on SQLite it cannot safely write."""


def write_lock(session: Session) -> None:
    """Take the database's write lock for this transaction before reading.

    SQLite: the transaction starts with BEGIN IMMEDIATE. PostgreSQL callers lock rows
    with FOR UPDATE instead, so this is a no-op there. Call it before the first query.

    On SQLite a transaction that began without the lock and has only read cannot take it now: its
    first write would fail with "database is locked" whenever another writer committed since its
    first read, which no busy timeout waits out. That is a mistake in the caller, found here at
    once rather than under load: ReadBeforeLock. End the reads first (`with writing(session):`).
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if not session.in_transaction():
        session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
    elif not session.connection().info.get(LOCKED):
        raise ReadBeforeLock("write_lock() inside a transaction that has read without the lock: "
                             "commit the reads first, or use `with writing(session):`")


@contextmanager
def writing(session: Session) -> Iterator[Session]:
    """A write transaction that holds the write lock from its first statement: `with writing(session):`.

    Whatever transaction is open (a request's reads so far) is committed first, because on SQLite a
    transaction that has read cannot always become a writer. The block's work is committed when it
    ends, and rolled back if it raises.
    """
    if session.in_transaction():
        session.commit()
    write_lock(session)
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    session.commit()


def end_request_transaction() -> None:
    """Roll back whatever the current app context's session has not committed, and so release its locks.

    For error handlers (a failed flush leaves the session unusable, PendingRollbackError, until it is
    rolled back, and the error page still reads the signed-in user) and for work after the answer.
    """
    session = g.get("db_session")
    if session is None or not session.in_transaction():
        return
    try:
        session.rollback()
    except SQLAlchemyError:  # the connection itself is gone: the next use makes a new session
        g.pop("db_session", None)
        with suppress(SQLAlchemyError):
            session.close()


class Database:
    """Binds an engine and a session factory to each Flask app; one session per app context."""

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"], private=True)
        app.extensions["ownstory_db"] = {
            "engine": engine,
            "sessionmaker": sessionmaker(engine, expire_on_commit=False),
        }
        app.teardown_appcontext(self._close_session)

    @property
    def engine(self) -> Engine:
        return current_app.extensions["ownstory_db"]["engine"]

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        return current_app.extensions["ownstory_db"]["sessionmaker"]

    @property
    def session(self) -> Session:
        """The session of the current app context, made on first use."""
        if "db_session" not in g:
            g.db_session = self.sessionmaker()
        return g.db_session

    def writing(self) -> AbstractContextManager[Session]:
        """`with db.writing():` writing(), on the current app context's session."""
        return writing(self.session)

    @staticmethod
    def _close_session(_exc) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
