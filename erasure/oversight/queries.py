"""What operators and auditors read: the queue by urgency, network health, daily timings and the export.

Every read here is an index range scan or an aggregate over one, so the pages stay fast with
100,000 requests in the table, and none of them touches a column that holds personal data:
identities appear as kinds and counts only, and no user id ever leaves this module.
"""
from __future__ import annotations

import binascii
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace

from sqlalchemy import and_, case, exists, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from app.text import b64url, b64url_decode, iso_utc_or_none
from erasure.agents.models import sent_through
from erasure.models import (
    FAILING_STEPS,
    OPEN_REQUESTS,
    RUNNABLE_STEPS,
    UNFINISHED_STEPS,
    ErasureStep,
    OptOutRequest,
    Receipt,
    RequestStatus,
    StepKind,
    StepStatus,
)

# The queue's bands, most urgent first. "overdue" is any open request past its deadline.
OVERDUE = "overdue"
BANDS = (OVERDUE, *OPEN_REQUESTS, RequestStatus.COMPLETED)
DAYS = 30
EXPORT_BATCH = 1000

# Only these columns are ever read for a listing: never the sealed identities, the owner box,
# the free-text reason or the user id.
LISTED = (OptOutRequest.id, OptOutRequest.status, OptOutRequest.scope, OptOutRequest.source,
          OptOutRequest.requested_at, OptOutRequest.deadline, OptOutRequest.completed_at,
          OptOutRequest.identity_kinds, OptOutRequest.receipt_id)


class BadCursor(ValueError):
    """A cursor this service did not give out."""


# --- the queue -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueFilter:
    status: str | None = None  # a RequestStatus
    overdue: bool | None = None
    network: str | None = None  # requests that revoke access at this network
    agent: str | None = None  # requests an authorized agent sent (erasure.agents)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the instant the walk started (so a request keeps its band across pages),
    the band, and the (deadline, id) of the page's last row."""

    at: dt.datetime
    band: int
    deadline: dt.datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.at.isoformat(), self.band, self.deadline.isoformat(), self.id], separators=(",", ":"))
        return b64url(raw.encode())

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            if len(text) > 400:
                raise ValueError("too long")
            decoded = json.loads(b64url_decode(text))
            at, band, deadline, last_id = decoded
            at, deadline = dt.datetime.fromisoformat(at), dt.datetime.fromisoformat(deadline)
            if (at.tzinfo is None or deadline.tzinfo is None or type(band) is not int
                    or not 0 <= band < len(BANDS) or not isinstance(last_id, str) or len(last_id) > 36):
                raise ValueError("not a cursor")
            return cls(at.astimezone(dt.UTC), band, deadline.astimezone(dt.UTC), last_id)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
            raise BadCursor("That page link is not one this service gave out.") from None


@dataclass(frozen=True)
class QueueRow:
    id: str
    status: str
    scope: str
    source: str
    requested_at: dt.datetime
    deadline: dt.datetime
    completed_at: dt.datetime | None
    identity_kinds: dict
    receipt_id: str | None
    band: str
    steps: int = 0
    steps_done: int = 0
    attempts: int = 0


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    at: dt.datetime
    next: Cursor | None


def _bands_for(filters: QueueFilter) -> list[int]:
    wanted = []
    for index, band in enumerate(BANDS):
        if filters.overdue is True and band != OVERDUE:
            continue
        if filters.overdue is False and band == OVERDUE:
            continue
        if filters.status and band not in (OVERDUE, filters.status):
            continue
        if filters.status == RequestStatus.COMPLETED and band == OVERDUE:
            continue
        wanted.append(index)
    return wanted


def _filtered(stmt, filters: QueueFilter):
    """The filters that look beyond the request's own row: its steps' network, the agent it came through."""
    if filters.agent is not None:
        stmt = stmt.where(sent_through(filters.agent))
    return _with_network(stmt, filters.network)


def _with_network(stmt, network: str | None):
    if network is None:
        return stmt
    return stmt.where(exists().where(ErasureStep.request_id == OptOutRequest.id, ErasureStep.kind == StepKind.REVOKE,
                                     ErasureStep.target == network))


def _after(after: tuple[dt.datetime, str] | None, descending: bool = False):
    """The keyset condition; the plain deadline bound lets the index range start at the cursor."""
    if after is None:
        return []
    deadline, last_id = after
    if descending:
        return [OptOutRequest.deadline <= deadline,
                or_(OptOutRequest.deadline < deadline, and_(OptOutRequest.deadline == deadline,
                                                            OptOutRequest.id < last_id))]
    return [OptOutRequest.deadline >= deadline,
            or_(OptOutRequest.deadline > deadline, and_(OptOutRequest.deadline == deadline,
                                                        OptOutRequest.id > last_id))]


def _band_statement(band: str, filters: QueueFilter, at: dt.datetime, after, limit: int):
    """One statement per band, each arm an index range scan on (status, deadline)."""
    if band == OVERDUE:
        # One arm per open status, each walking its own stretch of the index in deadline order,
        # merged by the database: an IN list over status would have to sort every overdue row.
        arms = []
        for status in OPEN_REQUESTS:
            if filters.status and filters.status != status:
                continue
            arm = (select(*LISTED).where(OptOutRequest.status == status, OptOutRequest.deadline < at,
                                         *_after(after))
                   .order_by(OptOutRequest.deadline, OptOutRequest.id).limit(limit))
            arms.append(select(*_filtered(arm, filters).subquery().c))
        merged = union_all(*arms).subquery()
        return select(*merged.c).order_by(merged.c.deadline, merged.c.id).limit(limit)
    stmt = select(*LISTED).where(OptOutRequest.status == band)
    if band == RequestStatus.COMPLETED:
        # The most recently due first: the end of the history an operator looks at.
        stmt = stmt.where(*_after(after, descending=True)).order_by(OptOutRequest.deadline.desc(),
                                                                   OptOutRequest.id.desc())
    else:
        stmt = stmt.where(OptOutRequest.deadline >= at, *_after(after)).order_by(OptOutRequest.deadline,
                                                                                 OptOutRequest.id)
    return _filtered(stmt, filters).limit(limit)


def queue_page(session: Session, filters: QueueFilter, now: dt.datetime, cursor: Cursor | None = None,
               limit: int = 50) -> QueuePage:
    """A page of the queue: overdue first (most overdue first), then needs attention, in progress and
    received (nearest deadline first), then completed (latest first).

    At most one statement per band and one for the page's step counts: never one per row, never OFFSET.
    """
    at = cursor.at if cursor else now
    rows: list[QueueRow] = []
    for band_index in _bands_for(filters):
        if cursor is not None and band_index < cursor.band:
            continue
        after = (cursor.deadline, cursor.id) if cursor is not None and band_index == cursor.band else None
        wanted = limit + 1 - len(rows)
        found = session.execute(_band_statement(BANDS[band_index], filters, at, after, wanted)).all()
        rows += [QueueRow(**row._asdict(), band=BANDS[band_index]) for row in found]
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    rows = _with_step_counts(session, rows)
    last = rows[-1] if rows else None
    next_cursor = Cursor(at, BANDS.index(last.band), last.deadline, last.id) if more and last else None
    return QueuePage(rows, at, next_cursor)


def _with_step_counts(session: Session, rows: list[QueueRow]) -> list[QueueRow]:
    if not rows:
        return rows
    counts = {r.request_id: r for r in session.execute(
        select(ErasureStep.request_id, func.count().label("steps"),
               func.sum(case((ErasureStep.status == StepStatus.DONE, 1), else_=0)).label("done"),
               func.sum(ErasureStep.attempts).label("attempts"))
        .where(ErasureStep.request_id.in_([r.id for r in rows])).group_by(ErasureStep.request_id))}
    return [replace(row, steps=c.steps, steps_done=int(c.done or 0), attempts=int(c.attempts or 0))
            if (c := counts.get(row.id)) else row for row in rows]


@dataclass(frozen=True)
class QueueCounts:
    by_status: dict[str, int]  # open statuses only: completed requests are counted per day instead
    overdue: int


def queue_counts(session: Session, now: dt.datetime) -> QueueCounts:
    """How many open requests there are in each state, and how many are overdue: one statement."""
    by_status: dict[str, int] = dict.fromkeys(OPEN_REQUESTS, 0)
    overdue = 0
    stmt = (select(OptOutRequest.status, func.count().label("n"),
                   func.sum(case((OptOutRequest.deadline < now, 1), else_=0)).label("overdue"))
            .where(OptOutRequest.status.in_(OPEN_REQUESTS)).group_by(OptOutRequest.status))
    for status, n, late in session.execute(stmt):
        by_status[status] = n
        overdue += int(late or 0)
    return QueueCounts(by_status, overdue)


# --- one request -----------------------------------------------------------------------------------

def request_with_steps(session: Session, request_id: str) -> tuple[QueueRow, list[ErasureStep]] | None:
    """The request's listed columns and its steps, in order; None if there is no such request."""
    row = session.execute(select(*LISTED).where(OptOutRequest.id == request_id)).first()
    if row is None:
        return None
    steps = list(session.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                                 .order_by(ErasureStep.position)))
    band = row.status if row.status == RequestStatus.COMPLETED else "open"
    listed = QueueRow(**row._asdict(), band=band, steps=len(steps),
                      steps_done=sum(s.status == StepStatus.DONE for s in steps),
                      attempts=sum(s.attempts for s in steps))
    return listed, steps


# --- network health ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Failing:
    kind: str
    target: str
    failing: int  # steps retrying or needing attention
    attention: int  # of those, needing attention
    latest_error: str | None
    next_try: dt.datetime | None


def failing_steps(session: Session) -> list[Failing]:
    """Per (kind, target): the steps that keep failing and the error of the one tried last. One statement.

    The claim index (status, not_before) finds the failing steps; there are few, unless a network
    is down, and then they are exactly what the operator needs to see.
    """
    partition = (ErasureStep.kind, ErasureStep.target)
    ranked = (select(ErasureStep.kind, ErasureStep.target, ErasureStep.last_error, ErasureStep.not_before,
                     func.row_number().over(partition_by=partition,
                                            order_by=(ErasureStep.not_before.desc(), ErasureStep.id))
                     .label("rank"),
                     func.count().over(partition_by=partition).label("failing"),
                     func.sum(case((ErasureStep.status == StepStatus.NEEDS_ATTENTION, 1), else_=0))
                     .over(partition_by=partition).label("attention"))
              .where(ErasureStep.status.in_(FAILING_STEPS)).subquery())
    rows = session.execute(select(ranked).where(ranked.c.rank == 1)
                           .order_by(ranked.c.kind, ranked.c.target)).all()
    return [Failing(r.kind, r.target, r.failing, int(r.attention or 0), r.last_error, r.not_before) for r in rows]


@dataclass(frozen=True)
class Unfinished:
    kind: str
    target: str
    waiting: int  # not under way: not started yet, or to be retried
    under_way: int  # claimed by a worker: calling, or waiting in its thread for a turn (max_in_flight)
    due_since: dt.datetime | None = None  # the longest-due of the waiting steps that are due now; None: none is


def unfinished_calls(session: Session, now: dt.datetime) -> dict[tuple[str, str], Unfinished]:
    """Per (kind, target), the revocations and purges not done yet: what each network and service still has
    to answer, and since when the longest-due of them has been due. One statement, over the claim index's
    unfinished statuses only."""
    runnable = ErasureStep.status.in_(RUNNABLE_STEPS)
    rows = session.execute(
        select(ErasureStep.kind, ErasureStep.target,
               func.sum(case((runnable, 1), else_=0)).label("waiting"),
               func.sum(case((ErasureStep.status == StepStatus.RUNNING, 1), else_=0)).label("under_way"),
               func.min(case((and_(runnable, ErasureStep.not_before <= now), ErasureStep.not_before)))
               .label("due_since"))
        .where(ErasureStep.status.in_(UNFINISHED_STEPS), ErasureStep.kind.in_((StepKind.REVOKE, StepKind.PURGE)))
        .group_by(ErasureStep.kind, ErasureStep.target))
    return {(r.kind, r.target): Unfinished(r.kind, r.target, int(r.waiting or 0), int(r.under_way or 0),
                                           r.due_since) for r in rows}


# --- days ----------------------------------------------------------------------------------------------

def _day(session: Session, column):
    """The UTC calendar day of a timestamp column, as YYYY-MM-DD text, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), literal("YYYY-MM-DD"))
    return func.strftime(literal("%Y-%m-%d"), column)  # SQLite stores UTC without a zone


def _seconds_between(session: Session, later, earlier):
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def last_days(now: dt.datetime, days: int = DAYS) -> list[dt.date]:
    today = now.astimezone(dt.UTC).date()
    return [today - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]


def _since(now: dt.datetime, days: int) -> dt.datetime:
    first = last_days(now, days)[0]
    return dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC)


@dataclass(frozen=True)
class DayTimings:
    day: dt.date
    completed: int = 0
    mean_seconds: float | None = None
    max_seconds: float | None = None
    missed: int = 0  # completed after their deadline
    deadline_seconds: float | None = None  # the longest deadline promised to that day's requests


def completion_days(session: Session, now: dt.datetime, days: int = DAYS) -> list[DayTimings]:
    """Requests completed on each of the last `days` days (UTC), with how long they took against their
    deadline. One aggregate statement over the completed_at index; days with none are filled in."""
    day = _day(session, OptOutRequest.completed_at).label("day")
    took = _seconds_between(session, OptOutRequest.completed_at, OptOutRequest.requested_at)
    allowed = _seconds_between(session, OptOutRequest.deadline, OptOutRequest.requested_at)
    stmt = (select(day, func.count().label("n"), func.avg(took).label("mean"), func.max(took).label("max"),
                   func.sum(case((OptOutRequest.completed_at > OptOutRequest.deadline, 1), else_=0)).label("missed"),
                   func.max(allowed).label("allowed"))
            .where(OptOutRequest.completed_at >= _since(now, days)).group_by(day))
    found = {r.day: r for r in session.execute(stmt)}
    result = []
    for d in last_days(now, days):
        r = found.get(d.isoformat())
        if r is None:
            result.append(DayTimings(d))
        else:
            result.append(DayTimings(d, r.n, float(r.mean), float(r.max), int(r.missed or 0), float(r.allowed)))
    return result


def receipts_per_day(session: Session, now: dt.datetime, days: int = DAYS) -> list[tuple[dt.date, int]]:
    """Receipts issued on each of the last `days` days (UTC): one GROUP BY over the issued_at index."""
    day = _day(session, Receipt.issued_at).label("day")
    found: dict[str, int] = dict(session.execute(select(day, func.count())
                                                 .where(Receipt.issued_at >= _since(now, days)).group_by(day)).all())
    return [(d, found.get(d.isoformat(), 0)) for d in last_days(now, days)]


# --- the export ------------------------------------------------------------------------------------

EXPORT_FIELDS = ("request_id", "requested_at", "deadline", "completed_at", "seconds_to_complete", "met_deadline",
                 "status", "scope_kind")


def export_rows(session: Session, now: dt.datetime, since: dt.datetime | None = None,
                until: dt.datetime | None = None, batch: int = EXPORT_BATCH) -> Iterator[dict]:
    """Every request's timings against its deadline, oldest first, read in keyset batches.

    No personal data: the request id, times, status, and whether the scope was everything or one
    network (not which). met_deadline is None while an open request is still within its deadline.
    """
    columns = (OptOutRequest.id, OptOutRequest.requested_at, OptOutRequest.deadline, OptOutRequest.completed_at,
               OptOutRequest.status, OptOutRequest.scope)
    after: tuple[dt.datetime, str] | None = None
    while True:
        stmt = select(*columns).order_by(OptOutRequest.requested_at, OptOutRequest.id).limit(batch)
        if since is not None:
            stmt = stmt.where(OptOutRequest.requested_at >= since)
        if until is not None:
            stmt = stmt.where(OptOutRequest.requested_at < until)
        if after is not None:
            stmt = stmt.where(OptOutRequest.requested_at >= after[0],
                              or_(OptOutRequest.requested_at > after[0],
                                  and_(OptOutRequest.requested_at == after[0], OptOutRequest.id > after[1])))
        rows = session.execute(stmt).all()
        for r in rows:
            if r.completed_at is not None:
                took: float | None = round((r.completed_at - r.requested_at).total_seconds(), 3)
                met: bool | None = r.completed_at <= r.deadline
            else:
                took, met = None, (False if r.deadline < now else None)
            yield {"request_id": r.id, "requested_at": iso_utc_or_none(r.requested_at),
                   "deadline": iso_utc_or_none(r.deadline), "completed_at": iso_utc_or_none(r.completed_at),
                   "seconds_to_complete": took, "met_deadline": met,
                   "status": r.status, "scope_kind": "all" if r.scope == "all" else "network"}
        if len(rows) < batch:
            return
        after = (rows[-1].requested_at, rows[-1].id)
