"""A max_in_flight across every worker process (a network's revocations, a service's erasures): one lock per call
it takes at once, held during a call. A slot's name says whose it is: "revoke:<network>" or "purge:<store>".

Each worker process keeps to the limit among its own threads (in_flight.py). Several processes, on one
machine or many, share it through locks that need no table and no write, and that the operating system or the
database lets go of when a process dies, SIGKILL included, so a killed worker never keeps a slot (a machine that
loses power keeps its PostgreSQL slots until the server's TCP keepalives find its connections gone):

- PostgreSQL: session advisory locks, (the name, slot i), each on a pooled connection kept for the call;
- an SQLite file: POSIX record locks on a file beside the database, `<database>.slots`, one byte a slot;
- SQLite in memory: nothing to share, since no other process can open that database.

A slot is taken without waiting (take() answers None when all are held); the caller decides how to wait.
The health page reads how many of each name's slots are held, by every process, without taking any (in_use()).
"""
from __future__ import annotations

import fcntl
import logging
import os
import random
import struct
import threading
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# Advisory locks are the whole database's: the key names the schema too, so that two services in one database
# (or the test suite's schemas) never share slots.
_TRY = text("SELECT pg_try_advisory_lock(:space, :slot)")
_UNLOCK = text("SELECT pg_advisory_unlock(:space, :slot)")
# The advisory locks granted in this database, by the first half of their key (pg_locks shows it as an oid, the
# 32 bits unsigned, and a lock taken with two int4 keys as objsubid 2).
_HELD = text("SELECT classid::bigint AS space, count(*) AS held FROM pg_locks"
             " WHERE locktype = 'advisory' AND objsubid = 2 AND granted"
             " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
             " AND classid::bigint = ANY(:spaces) GROUP BY classid")


def name_of(kind: str, target: str) -> str:
    """A slot's name: a step's kind and its target, "revoke:<network>" or "purge:<store>"."""
    return f"{kind}:{target}"


class Slot(Protocol):
    def release(self) -> None: ...


class Slots(Protocol):
    def take(self, name: str, limit: int) -> Slot | None:
        """One of the `limit` slots of `name`, now; None when every one is held (by any process)."""

    def in_use(self, limits: Mapping[str, int]) -> dict[str, int] | None:
        """How many of each name's slots every process together holds now; None where that cannot be seen."""


class _Nothing:
    def release(self) -> None:
        pass


class LocalSlots:
    """One process only (SQLite in memory): its own threads are kept to the limit by in_flight.py already."""

    def take(self, name: str, limit: int) -> Slot | None:
        return _Nothing()

    def in_use(self, limits: Mapping[str, int]) -> dict[str, int] | None:
        return None  # held by no lock: each worker's own threads count theirs (in_flight.py)


def _space(*names: str) -> int:
    """A signed 32-bit number for a slot's name (and a schema): the first half of an advisory lock's key."""
    return zlib.crc32("\0".join(("ownstory-slots", *names)).encode()) - 2**31


class _AdvisoryLock:
    def __init__(self, conn: Connection, name: str, space: int, slot: int) -> None:
        self.conn, self.name, self.space, self.slot = conn, name, space, slot

    def release(self) -> None:
        try:
            self.conn.execute(_UNLOCK, {"space": self.space, "slot": self.slot})
        except SQLAlchemyError:
            # The connection broke, and its session's locks ended with it. Invalidated, it is closed rather than
            # pooled: a lock still held on a live session could never go to another call with it.
            log.warning("a slot's connection broke at the end of a call (%s); it is dropped", self.name)
            self.conn.invalidate()
        finally:
            self.conn.close()


class AdvisorySlots:
    """PostgreSQL: slot i of a name is the session advisory lock (the name and schema, i)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._schema: str | None = None

    def take(self, name: str, limit: int) -> Slot | None:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")  # no transaction while held
        try:
            if self._schema is None:
                self._schema = conn.scalar(text("SELECT current_schema()")) or ""
            space = _space(self._schema, name)
            first = random.randrange(limit)  # noqa: S311 (spreads the tries, not a secret)
            for n in range(limit):
                slot = (first + n) % limit
                if conn.scalar(_TRY, {"space": space, "slot": slot}):
                    return _AdvisoryLock(conn, name, space, slot)
        except BaseException:
            conn.close()
            raise
        conn.close()
        return None

    def in_use(self, limits: Mapping[str, int]) -> dict[str, int] | None:
        if not limits:
            return {}
        with self.engine.connect() as conn:
            schema = conn.scalar(text("SELECT current_schema()")) or ""
            spaces = {_space(schema, name) % 2**32: name for name in limits}  # as pg_locks shows it, unsigned
            held = dict.fromkeys(limits, 0)
            for space, count in conn.execute(_HELD, {"spaces": list(spaces)}):
                held[spaces[space]] = count
        return held


class _RecordLock:
    def __init__(self, owner: FileSlots, offset: int) -> None:
        self.owner, self.offset = owner, offset

    def release(self) -> None:
        self.owner._release(self.offset)


class FileSlots:
    """An SQLite file: slot i of a name is one byte of `<database>.slots`, locked with fcntl.lockf.

    POSIX record locks belong to the process, not the thread, and a process's locks all go when it closes any
    descriptor of the file: so each process opens it once and keeps it, and remembers which bytes its own threads
    hold, trying only the others."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._held: set[int] = set()
        self._unshared = False  # the file could not be opened: said once

    def take(self, name: str, limit: int) -> Slot | None:
        base = _base(name)
        with self._lock:
            fd = self._open()
            if fd is None:
                return _Nothing()  # revocations go on, each worker process keeping to the limit on its own
            first = random.randrange(limit)  # noqa: S311 (spreads the tries, not a secret)
            for n in range(limit):
                offset = base + (first + n) % limit
                if offset in self._held:
                    continue
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                except OSError:
                    continue  # another process holds it
                self._held.add(offset)
                return _RecordLock(self, offset)
        return None

    def in_use(self, limits: Mapping[str, int]) -> dict[str, int] | None:
        """This process's own slots, and the bytes another process has locked, asked with F_GETLK, which takes
        nothing (and answers only for other processes' locks)."""
        with self._lock:
            fd = self._open()
            if fd is None:
                return None
            held = {}
            for name, limit in limits.items():
                base = _base(name)
                held[name] = sum(base + i in self._held or _locked_elsewhere(fd, base + i)
                                 for i in range(limit))
            return held

    def _open(self) -> int | None:
        """The slots file, opened once, under self._lock; None when it cannot be (said once, tried again each time)."""
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                if not self._unshared:
                    log.warning("cannot open %s (%s): each worker keeps to max_in_flight on its own",
                                self.path, exc.strerror)
                self._unshared = True
        return self._fd

    def _release(self, offset: int) -> None:
        with self._lock:
            if self._fd is not None and offset in self._held:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)
                self._held.discard(offset)


def _base(name: str) -> int:
    """The first byte of a name's slots in the slots file: 256 bytes a name, as max_in_flight is at most 64."""
    return (_space(name) + 2**31) << 8


# struct flock (fcntl(2)): l_type, l_whence, l_start, l_len, l_pid, in the machine's own layout.
_FLOCK = "@hhqqi"


def _locked_elsewhere(fd: int, offset: int) -> bool:
    """Whether another process holds a lock on the byte at `offset`: F_GETLK, which takes none."""
    asked = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, asked + bytes(32))  # room for the padding the machine's struct has
    return struct.unpack_from(_FLOCK, answer)[0] != fcntl.F_UNLCK


def for_engine(engine: Engine) -> Slots:
    """The slots every worker process on Ownstory's database shares."""
    if engine.dialect.name == "postgresql":
        return AdvisorySlots(engine)
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and database.startswith("file:"):  # an SQLite URI (?uri=true): file:PATH?OPTIONS
        database = database.removeprefix("file:").split("?", 1)[0]
    if database and database != ":memory:" and "mode=memory" not in str(engine.url):
        path = Path(database).resolve().with_name(Path(database).name + ".slots")
        with _FILES_LOCK:  # one per file in a process: its record locks are the process's, whoever takes them
            return _FILES.setdefault(path, FileSlots(path))
    return LocalSlots()


_FILES: dict[Path, FileSlots] = {}
_FILES_LOCK = threading.Lock()
