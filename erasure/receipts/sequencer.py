"""The log's sequencer: signed receipts wait in a pool, and one worker at a time, elected by a lease on a row,
appends the pool as leaves in pool order and signs one checkpoint per batch.

A batch is whatever the pool holds when the sequencer runs, up to BATCH leaves. A worker runs it at most
once a second while it is busy, or as soon as it has handed off enough receipts, and always before its
drain returns (erasure/engine/sequencing.py): a busy log signs one checkpoint for many receipts, and an
idle one sequences a receipt at once. The batch's transaction also records each receipt's step done and
settles its request (erasure/engine/handoff.py). A sequencer that dies holding the lease blocks the next
one for LEASE at most; a receipt pooled before a crash stays in the pool until a later batch takes it.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import table_of, write_lock, writing
from app.security import Vault
from erasure.engine import handoff
from erasure.models import LogSequencer, OptOutRequest, PooledReceipt, Receipt
from erasure.receipts import tlog

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=30)  # far longer than a batch takes; only a dead sequencer ever holds it that long
BATCH = 512  # leaves per batch, and so per checkpoint, at most
ROW = 1  # log_sequencer's one row


class LeaseLost(Exception):
    """The sequencer's lease ran out and another sequencer took it: this batch is rolled back."""


def me() -> str:
    """Who holds the lease: this process and thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def elect(session: Session, owner: str, now: dt.datetime) -> bool:
    """Take the lease if nobody holds it, or its holder let it run out, in the caller's write transaction
    (the receipt step's pooling one: a receipt pooled into an idle log costs no transaction more). The
    caller commits, then appends a batch (append_batch)."""
    taken = _rows(session.execute(
        update(LogSequencer)
        .where(LogSequencer.id == ROW, or_(LogSequencer.held_until.is_(None), LogSequencer.held_until < now))
        .values(held_by=owner, held_until=now + LEASE).execution_options(synchronize_session=False)))
    if not taken and session.get(LogSequencer, ROW) is None:
        _first_row(session)  # a database built without the migration's row
        return elect(session, owner, now)
    return taken == 1


def take_turn(session: Session, owner: str, now: dt.datetime) -> bool:
    """elect() in a write transaction of its own. Commits."""
    with writing(session):
        return elect(session, owner, now)


def append_batch(session: Session, vault: Vault, origin: str, owner: str,
                 clock: Callable[[], dt.datetime]) -> Batch:
    """As the elected sequencer: append one batch of the pool and give the lease back, in one transaction;
    what it logged, and whether more was pooled than it took. Commits. If the lease ran out meanwhile and another
    sequencer took it, nothing is appended (LeaseLost)."""
    try:
        with writing(session):
            added = sequence_held(session, vault, origin, clock())
            released = _rows(session.execute(
                update(LogSequencer).where(LogSequencer.id == ROW, LogSequencer.held_by == owner)
                .values(held_by=None, held_until=None).execution_options(synchronize_session=False)))
            if released != 1:
                raise LeaseLost("the sequencer's lease ran out while it appended; the batch is rolled back")
    except Exception:
        _release(session, owner)
        raise
    return added


Logged = dict[str, tuple[str, int]]  # request id -> (receipt id, leaf index), of one batch


class Batch(NamedTuple):
    logged: Logged
    # The batch took `limit` receipts, and more may wait: a sequencer goes on at once. Otherwise the batch took
    # everything pooled when it began, and so every receipt handed off before then; no empty batch proves it.
    more: bool


def sequence_held(session: Session, vault: Vault, origin: str, now: dt.datetime, limit: int = BATCH) -> Batch:
    """Append up to `limit` pooled receipts as leaves, in pool order, and sign one checkpoint of the new tree.

    The caller is the one sequencer (it holds the lease, or lock()) in a write transaction, and commits. Each
    receipt moves from the pool to receipts with its leaf index and is named on its request, and its
    handed-off step is done (handoff.settle_logged).
    """
    tlog.lock(session)  # any other appender (issue.issue_receipt) waits for this batch
    read, taken, named = _statements()
    conn = session.connection()
    rows = conn.execute(read, {"limit": limit}).all()
    if not rows:
        return Batch({}, more=False)
    more = len(rows) >= limit
    conn.execute(taken, {"seqs": [r.seq for r in rows]})
    # A second run of a receipt step can pool again just after the first one's receipt was logged: that
    # request already has its leaf, so the copy is dropped, never logged twice.
    pooled = [r for r in rows if r.logged is None]
    if not pooled:
        return Batch({}, more)
    first, checkpoint = tlog.append_many(session, vault, origin, [p.jws.encode("ascii") for p in pooled], now)
    conn.execute(insert(table_of(Receipt)), [
        {"id": p.receipt_id, "request_id": p.request_id, "kid": p.kid, "jws": p.jws, "issued_at": p.issued_at,
         "leaf_index": first + n} for n, p in enumerate(pooled)])
    conn.execute(named, [{"request": p.request_id, "receipt": p.receipt_id} for p in pooled])
    log.info("log: %d receipt(s) appended as leaves %d to %d, checkpoint of size %d signed", len(pooled), first,
             first + len(pooled) - 1, checkpoint.tree_size)
    logged = {p.request_id: (p.receipt_id, first + n) for n, p in enumerate(pooled)}
    handoff.settle_logged(session, logged, now)
    return Batch(logged, more)


@functools.cache
def _statements():
    """A batch's statements on the pool and the requests, built once: a busy log runs them every second."""
    pool, receipts, requests = table_of(PooledReceipt), table_of(Receipt), table_of(OptOutRequest)
    read = (select(pool.c.seq, pool.c.receipt_id, pool.c.request_id, pool.c.kid, pool.c.jws, pool.c.issued_at,
                   receipts.c.id.label("logged"))
            .outerjoin(receipts, receipts.c.request_id == pool.c.request_id)
            .order_by(pool.c.seq).limit(bindparam("limit")))
    taken = delete(pool).where(pool.c.seq.in_(bindparam("seqs", expanding=True)))
    named = update(requests).where(requests.c.id == bindparam("request")).values(receipt_id=bindparam("receipt"))
    return read, taken, named


def _first_row(session: Session) -> None:
    """The lease's row, which the migration makes; made here too for a database built without it."""
    try:
        with session.begin_nested():
            session.add(LogSequencer(id=ROW))
    except IntegrityError:
        pass  # made by another sequencer at the same moment


def _release(session: Session, owner: str) -> None:
    """Give the lease back after a batch failed, so that the next sequencer need not wait for it to run out."""
    session.rollback()
    write_lock(session)
    session.execute(update(LogSequencer).where(LogSequencer.id == ROW, LogSequencer.held_by == owner)
                    .values(held_by=None, held_until=None))
    session.commit()


def _rows(result) -> int:
    return cast(CursorResult[Any], result).rowcount
