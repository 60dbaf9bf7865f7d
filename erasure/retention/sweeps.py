"""Retention sweeps: the worker purges, on a schedule, what has outlived its purpose in the platform's stores.

A sweep does three things, each through the data map's stores, in committed batches:

1. **Past retention.** A table entry (sql stores) with `retention_days` (and its `timestamp_column`)
   loses the rows written more than that many days ago.
2. **Expired grants.** A grant has expired when the platform can no longer reach the account for
   good: its access token expired more than `EXPIRED_GRANT_GRACE` ago and it holds no refresh
   token. The data of that account (its account id and handle, in the grant's network) goes,
   from stores of every kind; the grant row stays on /me so the person can connect again, which
   renews it in place and stops the sweep. A handle that a live grant holds now is left alone
   (handles pass to other people).
   Revoked grants need no separate pass: Ownstory revokes a grant only when the person opts out,
   which deletes the grant and lists its account and handle on the suppression list, so pass 3
   covers them.
3. **Reappeared data.** Rows whose identity is on the suppression list of an opt-out that has
   completed (so the request's own purge and its receipt are not second-guessed), found by
   reading each table entry's distinct identity values in keyset batches (other kinds cannot be
   listed by identity value), keying each with the peppers, and asking the list once per batch.
   An identity held again by someone signed up or connected now (a person who came back) is not
   swept: coming back carries no penalty.

A sweep is a row in `retention_sweeps`, with the rows it purged per data-map entry (a sweep that
purged nothing is kept for a week, the others for good). Only one
runs at a time, however many workers tick: starting one is serialized (BEGIN IMMEDIATE on
SQLite, an advisory lock on PostgreSQL, and a unique index on the one running row), and the
running sweep holds a lease it renews as it goes; a sweep whose worker died is marked abandoned
when its lease runs out and the next one starts over. Every pass is idempotent: a rerun purges
only what is still there, so nothing is counted twice.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from sqlalchemy import CursorResult, Select, delete, exists, func, select, tuple_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.db import utcnow, write_lock, writing
from app.models import User
from consent.expiry import expired_for_good
from consent.models import Grant, Suppression
from consent.suppression import Identity
from erasure.context import ErasureContext
from erasure.models import OptOutRequest, RetentionSweep
from erasure.stores.kinds import Entry, StoreError, StoreKind
from erasure.stores.sql import SqlStore

log = logging.getLogger(__name__)

REASONS = ("past_retention", "expired_grant", "reappeared")
LEASE = dt.timedelta(minutes=5)
EXPIRED_GRANT_GRACE = dt.timedelta(days=1)  # time to connect again before an expired grant's data goes
VALUES_BATCH = 500  # identity values per suppression lookup; with two peppers, 2,000 bound parameters
KEEP_EMPTY = dt.timedelta(days=7)  # the record of a sweep that purged nothing
LOCK_ID = 0x72657465  # "rete": the advisory lock that serializes starting a sweep on PostgreSQL


@dataclass
class SweepResult:
    ran: bool  # False: another sweep is running, or one ran too recently
    sweep_id: str | None = None
    status: str | None = None
    rows: int = 0
    entries: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


class LeaseLost(Exception):
    """This sweep's lease ran out and it was marked abandoned; what it purged stays purged."""


def sweep(session: Session, ctx: ErasureContext, now: dt.datetime | None = None, *, owner: str = "direct",
          every: dt.timedelta | None = None, lease: dt.timedelta = LEASE,
          grant_grace: dt.timedelta = EXPIRED_GRANT_GRACE, batch_size: int = 1000) -> SweepResult:
    """Run one sweep, unless another is running or (with `every`) one started less than `every` ago.

    `now` is the sweep's clock: retention and expiry are measured from it.
    """
    now = now or utcnow()
    row = _start(session, now, owner, lease, every)
    if row is None:
        return SweepResult(ran=False)
    run = _Sweep(session, ctx, row, owner, now, lease, batch_size)
    log.info("retention sweep %s started by %s", row.id, owner)
    try:
        run.past_retention()
        run.expired_grants(grant_grace)
        run.reappeared()
    except LeaseLost:
        log.warning("retention sweep %s lost its lease; the next sweep starts over", row.id)
        return run.result("abandoned")
    except Exception:
        log.exception("retention sweep %s failed", row.id)
        session.rollback()
        run.errors.append({"reason": "sweep", "error": "an unexpected error; see the logs"})
        try:
            run.finish("failed")
        except Exception:
            log.exception("retention sweep %s: cannot record the failure; its lease will run out", row.id)
        raise
    return run.finish("partial" if run.errors else "done")


def _start(session: Session, now: dt.datetime, owner: str, lease: dt.timedelta,
           every: dt.timedelta | None) -> RetentionSweep | None:
    """Record a running sweep, or None if one runs or is not due. Starting is serialized everywhere."""
    if session.in_transaction():
        session.commit()
    if every is not None:
        recent = _recent(session, now, every)
        # The cheap look, without the lock, ends here: on SQLite its read transaction could not take
        # the write lock below (write_lock would refuse), nor safely write.
        session.commit()
        if recent:
            return None  # most ticks end here
    write_lock(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(LOCK_ID)))
    session.execute(
        update(RetentionSweep)
        .where(RetentionSweep.status == "running", RetentionSweep.lease_expires_at < now)
        .values(status="abandoned", finished_at=now, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    # A sweep a minute adds up: those that found nothing are kept a week, the others for good.
    session.execute(delete(RetentionSweep).where(RetentionSweep.status == "done", RetentionSweep.rows == 0,
                                                 RetentionSweep.started_at < now - KEEP_EMPTY))
    busy = session.scalar(select(RetentionSweep.id).where(RetentionSweep.status == "running"))
    if busy is not None or (every is not None and _recent(session, now, every)):
        session.commit()
        return None
    row = RetentionSweep(status="running", owner=owner[:64], started_at=now, lease_expires_at=now + lease)
    session.add(row)
    try:
        session.commit()
    except sa_exc.IntegrityError:  # the one-running index: another worker got there first
        session.rollback()
        return None
    return row


def _recent(session: Session, now: dt.datetime, every: dt.timedelta) -> bool:
    last = session.scalar(select(func.max(RetentionSweep.started_at)))
    return last is not None and now - _aware(last) < every


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _key(entry: Entry) -> tuple[str, str]:
    return (entry.store, entry.key)


class _Sweep:
    """One sweep under way: its counts, its lease, and its three passes."""

    def __init__(self, session: Session, ctx: ErasureContext, row: RetentionSweep, owner: str, now: dt.datetime,
                 lease: dt.timedelta, batch_size: int) -> None:
        self.session, self.ctx, self.id, self.owner = session, ctx, row.id, owner
        self.started, self.lease, self.batch_size = now, lease, batch_size
        self._t0 = self._beat = time.monotonic()
        self.counts: dict[tuple[str, str], dict[str, Any]] = {
            _key(e): {"store": s.name, **s.describe(e), "category": e.category, **dict.fromkeys(REASONS, 0), "rows": 0}
            for s in ctx.datamap.stores for e in s.entries}
        self.errors: list[dict] = []

    def clock(self) -> dt.datetime:
        return self.started + dt.timedelta(seconds=time.monotonic() - self._t0)

    # --- the passes ----------------------------------------------------------------------------

    def past_retention(self) -> None:
        """Retention by timestamp, which only tables have."""
        for store in self._sql_stores():
            for entry in store.entries:
                if entry.retention_days is None:
                    continue
                before = self.started - dt.timedelta(days=entry.retention_days)
                self._purge(store, entry, "past_retention", partial(store.purge_older, entry, before))

    def expired_grants(self, grace: dt.timedelta) -> None:
        entries = [(s, e) for s, e in self._entries() if e.identity in ("account", "handle")]
        if not entries:
            return
        expired = expired_for_good(self.started - grace)
        last = ""
        while True:
            grants = self.session.execute(
                select(Grant.id, Grant.network, Grant.account_id, Grant.handle)
                .where(expired, Grant.id > last).order_by(Grant.id).limit(VALUES_BATCH)).all()
            if not grants:
                self.session.commit()
                return
            last = grants[-1].id
            handles = {(g.network, g.handle) for g in grants if g.handle}
            held = set()
            if handles:
                held = set(self.session.execute(select(Grant.network, Grant.handle).where(
                    tuple_(Grant.network, Grant.handle).in_(handles), ~expired)))
            self.session.commit()  # end the read before the stores are written
            for store, entry in entries:
                if entry.identity == "account":
                    values = {g.account_id for g in grants if g.network == entry.network}
                else:
                    values = {g.handle for g in grants if g.network == entry.network and g.handle
                              and (g.network, g.handle) not in held}
                if values:
                    self._purge(store, entry, "expired_grant", partial(store.purge, entry, sorted(values)))

    def reappeared(self) -> None:
        """Tables are read for the identity values they hold; other kinds cannot be listed by value."""
        for store in self._sql_stores():
            for entry in store.entries:
                try:
                    for values in store.identity_values(entry, VALUES_BATCH):
                        matched = self._suppressed(entry, values)
                        if matched:
                            self._purge(store, entry, "reappeared", partial(store.purge, entry, matched))
                        self.heartbeat()
                except StoreError as exc:
                    self._failed(store, entry, "reappeared", str(exc))

    # --- helpers -------------------------------------------------------------------------------

    def _entries(self) -> list[tuple[StoreKind, Entry]]:
        return [(store, entry) for store in self.ctx.datamap.stores for entry in store.entries]

    def _sql_stores(self) -> list[SqlStore]:
        return [store for store in self.ctx.datamap.stores if isinstance(store, SqlStore)]

    def _suppressed(self, entry: Entry, values: list) -> list:
        """The values whose identity is listed by a completed opt-out and held by nobody here now."""
        network = entry.network if entry.identity in ("account", "handle") else None
        by_pair: dict[tuple[str, str], list] = {}
        for value in values:
            for pair in self.ctx.peppers.all(Identity(entry.identity, str(value), network)):
                by_pair.setdefault(pair, []).append(value)
        still_open = exists().where(OptOutRequest.id == Suppression.request_id, OptOutRequest.status != "completed")
        listed = self.session.execute(select(Suppression.key_id, Suppression.digest).where(
            tuple_(Suppression.key_id, Suppression.digest).in_(list(by_pair)), ~still_open))
        matched = {value for key_id, digest in listed for value in by_pair[(key_id, digest)]}
        if matched:
            matched -= self._held_now(entry, matched)
        self.session.commit()
        return sorted(matched, key=str)

    def _held_now(self, entry: Entry, values: set) -> set:
        """Values that identify someone signed up or connected now: a person who came back."""
        text_of = {str(v): v for v in values}
        query: Select[str | None]
        if entry.identity == "account":
            query = select(Grant.account_id).where(Grant.network == entry.network, Grant.account_id.in_(text_of))
        elif entry.identity == "handle":
            query = select(Grant.handle).where(Grant.network == entry.network, Grant.handle.in_(text_of))
        elif entry.identity == "email":
            lowered: dict[str, list] = {}
            for v in values:
                lowered.setdefault(str(v).strip().lower(), []).append(v)
            emails = self.session.scalars(select(User.email).where(User.email.in_(lowered)))
            return {v for email in emails for v in lowered[email]}
        else:
            query = select(User.id).where(User.id.in_(text_of))
        return {text_of[found] for found in self.session.scalars(query) if found is not None}  # NULL is in no IN list

    def _purge(self, store: StoreKind, entry: Entry, reason: str, purge: Callable[..., int]) -> None:
        """Run `purge(on_batch=..., batch_size=...)`, a store's purge of the entry, counting what each batch did."""
        counts = self.counts[_key(entry)]

        def on_batch(done: int) -> None:
            counts[reason] += done
            counts["rows"] += done
            self.heartbeat()

        try:
            purge(on_batch=on_batch, batch_size=self.batch_size)
        except StoreError as exc:
            self._failed(store, entry, reason, str(exc))

    def _failed(self, store: StoreKind, entry: Entry, reason: str, error: str) -> None:
        log.warning("retention sweep %s: %s (%s)", self.id, error, reason)
        self.errors.append({"store": store.name, **store.describe(entry), "reason": reason, "error": error})

    def heartbeat(self) -> None:
        """Renew the lease and save the counts so far, at most every few seconds."""
        if time.monotonic() - self._beat < min(5.0, self.lease.total_seconds() / 3):
            return
        if not self._fenced(status="running", lease_expires_at=self.clock() + self.lease):
            raise LeaseLost(self.id)
        self._beat = time.monotonic()

    def _fenced(self, **values) -> bool:
        """Write to this sweep's row only while this worker still holds it. Commits."""
        with writing(self.session):
            done = cast(CursorResult[Any], self.session.execute(
                update(RetentionSweep)
                .where(RetentionSweep.id == self.id, RetentionSweep.owner == self.owner[:64],
                       RetentionSweep.status == "running")
                .values(rows=self.total(), entries=self.entries(), errors=list(self.errors), **values)
                .execution_options(synchronize_session=False)
            )).rowcount
        return done == 1

    def total(self) -> int:
        return sum(c["rows"] for c in self.counts.values())

    def entries(self) -> list[dict]:
        return [dict(c) for c in self.counts.values()]

    def finish(self, status: str) -> SweepResult:
        if not self._fenced(status=status, finished_at=self.clock(), lease_expires_at=None):
            log.warning("retention sweep %s lost its lease before it finished", self.id)
            return self.result("abandoned")
        log.info("retention sweep %s %s: %d rows purged", self.id, status, self.total())
        return self.result(status)

    def result(self, status: str) -> SweepResult:
        return SweepResult(ran=True, sweep_id=self.id, status=status, rows=self.total(), entries=self.entries(),
                           errors=list(self.errors))


def every(app) -> dt.timedelta:
    """How often the worker sweeps: RETENTION_SWEEP_SECONDS in the app's config (60 by default)."""
    return dt.timedelta(seconds=float(app.config.get("RETENTION_SWEEP_SECONDS", 60)))
