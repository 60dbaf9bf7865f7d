"""The erasure queue: steps are rows, claimed with a lease in one statement and finished fenced."""
from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Integer, String, and_, bindparam, exists, func, literal_column, or_, select, union_all, update
from sqlalchemy.orm import Session, aliased

from app import driver
from app.db import Base, UTCDateTime, dialect_insert, table_of, write_lock
from erasure.models import RUNNABLE_STEPS, ErasureHold, ErasureStep, OptOutRequest, StepKind, StepStatus

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=120)
BUSY_KINDS = (StepKind.REVOKE, StepKind.PURGE)  # the kinds a claim passes over at a network or store at its limit


@dataclass(frozen=True)
class Claim:
    """A step leased to `owner`, with the rows it runs on as they were at the claim (detached: read only)."""

    step_id: str
    owner: str
    step: ErasureStep = field(compare=False, repr=False)
    request: OptOutRequest = field(compare=False, repr=False)
    last_phase: bool = True  # no step of its request comes after it: finishing it may complete the request


@functools.cache
def _claim_statement(skip_locked: bool, limit: int, with_requests: bool = False, skip_busy: bool = False):
    """Built once per limit: the claim runs every time a worker's thread is free, and building and
    compiling it costs more than running it.

    `with_requests` (PostgreSQL): the claimed steps' requests come back in the same statement, joined in
    the UPDATE's FROM, each column labelled req_<name>, with the request's last phase: a round trip
    less per claim. SQLite's RETURNING cannot name a table of the FROM (it reads them in a second statement).

    One arm per status, each an ordered scan of ix_erasure_steps_claim (status, not_before) that stops
    at `limit` steps not blocked by an earlier phase (each a probe of ix_erasure_steps_request_phase):
    a claim reads about as many rows as it takes, however long the queue. The running steps' arm reads
    only those whose lease ran out, from ix_erasure_steps_lease. One condition over all the
    statuses at once (status IN (...) OR ...) cannot be read in not_before order from that index, and
    PostgreSQL then joins and sorts every waiting step on every claim.

    The statuses and the limit are written into the SQL, not sent as parameters: the driver prepares a
    statement it runs often, and PostgreSQL's generic plan for `status != $1` expects no rows to pass
    and scans the whole table for the blocked check on every claim.

    `skip_busy`: revocations at the networks named in the parameter `busy_revoke`, and purges of the stores named in
    `busy_purge`, are passed over (they are at their max_in_flight: see in_flight.py). Only then: the statement a
    worker runs otherwise is unchanged.
    """
    now = bindparam("now", type_=UTCDateTime())
    top = literal_column(str(int(limit)), Integer())
    earlier = aliased(ErasureStep)
    blocked = exists().where(earlier.request_id == ErasureStep.request_id, earlier.phase < ErasureStep.phase,
                             earlier.status != _constant(StepStatus.DONE))
    arms = [(status, ErasureStep.not_before <= now) for status in RUNNABLE_STEPS]
    arms.append((StepStatus.RUNNING, ErasureStep.lease_expires_at < now))  # its worker died: take it over
    due = []
    busy = ~or_(*(and_(ErasureStep.kind == _kind_constant(kind),
                       ErasureStep.target.in_(bindparam(f"busy_{kind}", expanding=True))) for kind in BUSY_KINDS))
    for status, condition in arms:
        arm = (select(ErasureStep.id, ErasureStep.not_before)
               .where(ErasureStep.status == _constant(status), condition, ~blocked, *([busy] if skip_busy else []))
               .order_by(ErasureStep.not_before).limit(top))
        if skip_locked:
            arm = arm.with_for_update(skip_locked=True)
        due.append(select(*arm.cte(f"due_{status}").c))
    candidates = union_all(*due).subquery("due")
    first = select(candidates.c.id).order_by(candidates.c.not_before).limit(top)
    steps = table_of(ErasureStep)
    claimed = (  # on the table, not the mapped class: the rows come back as plain values (see claim)
        update(steps)
        .where(steps.c.id.in_(first.scalar_subquery()))
        .values(status=_constant(StepStatus.RUNNING), lease_owner=bindparam("owner"),
                lease_expires_at=bindparam("expires", type_=UTCDateTime()), attempts=steps.c.attempts + 1)
    )
    if not with_requests:
        return claimed.returning(*steps.c)  # the claimed rows themselves: the worker need not read them again
    requests = table_of(OptOutRequest)
    return (claimed.where(requests.c.id == steps.c.request_id)
            .returning(*steps.c, *(c.label(f"req_{c.name}") for c in requests.c),
                       _last_phase(steps.c.request_id).label("req_last_phase")))


def _last_phase(request_id):
    """The highest phase of a request's steps: finishing a step of it may complete the request."""
    later = table_of(ErasureStep).alias("later")
    return select(func.max(later.c.phase)).where(later.c.request_id == request_id).scalar_subquery()


def _constant(status: StepStatus):
    """A status written into the SQL (StepStatus's own words, never input)."""
    return literal_column(f"'{StepStatus(status)}'", String())


def _kind_constant(kind: StepKind):
    """A step kind written into the SQL, as _constant() writes a status."""
    return literal_column(f"'{StepKind(kind)}'", String())


@functools.cache
def _requests_statement():
    requests = OptOutRequest.__table__
    last_phase = _last_phase(requests.c.id).label("last_phase")
    return select(*requests.c, last_phase).where(requests.c.id.in_(bindparam("ids", expanding=True)))


_Model = TypeVar("_Model", bound=Base)


def _detached(model: type[_Model], row, prefix: str = "") -> _Model:
    """A row as a mapped object outside any session: read only, as a claim's rows are.

    The ORM's own loading (identity map, events) costs more than the claim's statements do, and
    nothing here is written back through these objects: the values go straight into the instance's
    dict (a seventh of the cost of the mapped __init__, which records each one as a change).
    """
    instance = model.__mapper__.class_manager.new_instance()
    instance.__dict__.update({name: row[prefix + name] for name in _column_names(model)})
    return instance


@functools.cache
def _column_names(model: type[Base]) -> tuple[str, ...]:
    return tuple(c.name for c in model.__table__.c)


def claim(session: Session, owner: str, now: dt.datetime, limit: int = 10, lease: dt.timedelta = LEASE,
          commit: bool = True, busy: Collection[tuple[str, str]] = ()) -> list[Claim]:
    """Lease up to `limit` runnable steps to `owner`, atomically, and commit (unless `commit` is False:
    a worker claims its next step in the transaction that records the outcome of its last one). No step of a
    (kind, target) in `busy`: the networks' revocations and the services' purges at their max_in_flight.

    A step is runnable when it is due and every step of a lower phase in its request is done;
    a running step whose lease ran out (its worker died) is runnable again. On PostgreSQL the
    inner SELECT skips rows another worker is claiming; on SQLite BEGIN IMMEDIATE serializes.

    The claimed steps come back with their requests, read in the same transaction: on PostgreSQL in the
    claim's own statement; on SQLite one statement for the steps and one for their requests.
    """
    postgresql = session.get_bind().dialect.name == "postgresql"
    write_lock(session)
    # Core statements on the session's connection, on psycopg's cursor where it can: no ORM on this path
    parameters = {"now": now, "owner": owner, "expires": now + lease}
    if busy:
        parameters.update({f"busy_{kind}": sorted(target for k, target in busy if k == kind) for kind in BUSY_KINDS})
    rows = driver.mappings(session, _claim_statement(postgresql, limit, postgresql, bool(busy)), parameters)
    steps = [_detached(ErasureStep, row) for row in rows]
    requests = {}
    if postgresql:
        requests = {row["request_id"]: (_detached(OptOutRequest, row, "req_"), row["req_last_phase"])
                    for row in rows}
    elif steps:
        request_rows = driver.mappings(session, _requests_statement(), {"ids": sorted({s.request_id for s in steps})})
        requests = {row["id"]: (_detached(OptOutRequest, row), row["last_phase"]) for row in request_rows}
    if commit:
        session.commit()
    return [Claim(s.id, owner, s, requests[s.request_id][0], s.phase >= requests[s.request_id][1]) for s in steps]


def finish(session: Session, claim_: Claim, now: dt.datetime, **values) -> bool:
    """Record a step's outcome only if this worker still holds its lease. The caller commits.

    False means the lease was lost (the step was taken over after it ran out): the outcome
    is dropped, which is safe because every step is idempotent.
    """
    values.setdefault("lease_owner", None)
    values.setdefault("lease_expires_at", None)
    done = driver.rowcount(session, _finish_statement(tuple(sorted(values))),
                           {"step_id": claim_.step_id, "owner": claim_.owner, **values})
    if done != 1:
        log.warning("step %s: lease lost before it finished; its outcome is dropped", claim_.step_id)
        return False
    return True


def finish_changing(session: Session, claim_: Claim, now: dt.datetime, change, arguments: dict, /, **values
                    ) -> tuple[bool, bool]:
    """finish(), and in the same statement a change to the step's request, made only if the finish was (PostgreSQL:
    a round trip less per step that moves or completes its request). Returns whether each was. The caller commits.

    `change` is an UPDATE of the request built once, with `arguments` its parameters; it runs in the statement's
    snapshot, so it does not see the step as finished yet (see worker._complete_statement). No parameter of it may
    be named after a column of the steps: an UPDATE sets every column its parameters name.
    """
    values.setdefault("lease_owner", None)
    values.setdefault("lease_expires_at", None)
    finished, changed = driver.rows(session, _finish_changing_statement(tuple(sorted(values)), change),
                                    {"step_id": claim_.step_id, "owner": claim_.owner, **arguments, **values})[0]
    if finished != 1:
        log.warning("step %s: lease lost before it finished; its outcome is dropped", claim_.step_id)
        return False, False
    return True, bool(changed)


@functools.cache
def _finish_changing_statement(names: tuple[str, ...], change):
    steps = table_of(ErasureStep)
    finished = _finish_statement(names).returning(steps.c.request_id).cte("finished")
    changed = change.where(exists(select(finished.c.request_id))).returning(literal_column("1")).cte("changed")
    return select(select(func.count()).select_from(finished).scalar_subquery(),
                  select(func.count()).select_from(changed).scalar_subquery())


@functools.cache
def _finish_statement(names: tuple[str, ...]):
    """One statement per set of columns written, built once: every step runs one or more of them.

    Written against the table, not the mapped class: the ORM's bulk-update path would look for
    objects to synchronise on every call, and a worker runs this statement two or three times a step.
    """
    columns = ErasureStep.__table__.c
    return (
        update(table_of(ErasureStep))
        .where(columns.id == bindparam("step_id"), columns.lease_owner == bindparam("owner"),
               columns.status == _constant(StepStatus.RUNNING))
        .values({name: bindparam(name, type_=columns[name].type) for name in names})
    )


def hold_back(session: Session, step: ErasureStep, until: dt.datetime) -> None:
    """The later phases of a step's request wait at least until `until`. The caller commits.

    Only a saving: the claim still checks that every earlier phase is done. A claim reads the waiting
    steps in not_before order, and a step blocked behind an earlier phase is read, and passed over, by
    every claim of every worker while it waits: behind a failing step until its next try, or behind a
    receipt handed off to the log's sequencer until its batch (about a second, for every request that
    completes meanwhile). A batch that logs the receipt makes them due again (handoff.settle_logged).
    """
    driver.rowcount(session, _later_phases_statement(), {"request": step.request_id, "after": step.phase,
                                                         "until": until})


HOLD_AT_ONCE = 500  # steps one hold moves: each answer "wait" moves the next ones due, not a whole backlog


def hold(session: Session, kind: str, target: str, until: dt.datetime, after_phase: int,
         slack: dt.timedelta) -> int:
    """A network (revoke) or a store's service (purge) asked us to wait (Retry-After on a 429 or a 503): what it
    asks of one call it asks of every call, so the next steps of that kind and target due are not tried before
    `until`, nor, as hold_back() does, the later phases of their requests (after `after_phase`, theirs). Steps
    already due within `slack` of `until` are left as they are, so that the answers of calls in flight together
    do not move the same steps again. At most HOLD_AT_ONCE steps a call, the ones due first: with a backlog of
    100,000 people, moving them all (and their later steps) took PostgreSQL 14 to 18 s, in the transaction that
    records the answer; a claim that reaches the ones after them meets the next "wait", which moves the next
    ones. The hold itself is recorded for every other worker to read (holds()). Returns how many steps it moved.
    The caller commits."""
    given = {"held": target, "until": until, "soon": until - slack}  # not "target": an UPDATE sets its columns
    requests = list(session.scalars(_next_due_statement(StepKind(kind)), given))
    if requests:
        session.execute(_behind_held_statement(), {"ids": requests, "after": after_phase, **given})
    dialect = session.get_bind().dialect.name
    session.execute(_hold_statement(dialect), {"kind": StepKind(kind).value, "target": target, "until": until})
    return len(requests)


@functools.cache
def _hold_statement(dialect: str):
    """The hold recorded, or made longer: two workers told at once keep the later end, whichever writes last.
    One row per network or service, kept when the hold is over (holds() reads only those not over)."""
    holds = table_of(ErasureHold)
    statement = dialect_insert(dialect)(holds)
    return statement.on_conflict_do_update(index_elements=[holds.c.kind, holds.c.target],
                                           set_={"until": statement.excluded.until},
                                           where=holds.c.until < statement.excluded.until)


def holds(session: Session, now: dt.datetime) -> dict[tuple[str, str], dt.datetime]:
    """The holds not over yet, (kind, target): until when. A few rows at most: one per network or service."""
    rows = session.execute(select(ErasureHold.kind, ErasureHold.target, ErasureHold.until)
                           .where(ErasureHold.until > now))
    return {(kind, target): until for kind, target, until in rows}


@functools.cache
def _next_due_statement(kind: StepKind):
    steps = table_of(ErasureStep)
    next_due = (select(steps.c.id)
                .where(steps.c.status.in_([_constant(s) for s in RUNNABLE_STEPS]),
                       steps.c.not_before < bindparam("soon", type_=UTCDateTime()),
                       steps.c.target == bindparam("held"),
                       steps.c.kind == _kind_constant(kind))
                .order_by(steps.c.not_before).limit(HOLD_AT_ONCE)
                .with_for_update(skip_locked=True))  # PostgreSQL; SQLite has one writer and no FOR UPDATE
    return (update(steps).where(steps.c.id.in_(next_due.scalar_subquery()))
            .values(not_before=bindparam("until", type_=UTCDateTime()))
            .returning(steps.c.request_id))


@functools.cache
def _behind_held_statement():
    steps = table_of(ErasureStep)
    return (update(steps)
            .where(steps.c.request_id.in_(bindparam("ids", expanding=True)), steps.c.phase > bindparam("after"),
                   steps.c.status == _constant(StepStatus.PENDING),
                   steps.c.not_before < bindparam("soon", type_=UTCDateTime()))
            .values(not_before=bindparam("until", type_=UTCDateTime())))


def finish_holding_back(session: Session, claim_: Claim, now: dt.datetime, until: dt.datetime, **values) -> bool:
    """finish(), then hold_back() of the step's later phases until `until` if it finished (a hand-off): on
    PostgreSQL in one statement (finish_changing). Returns whether it finished. The caller commits."""
    if session.get_bind().dialect.name != "postgresql":
        if not finish(session, claim_, now, **values):
            return False
        hold_back(session, claim_.step, until)
        return True
    later = {"request": claim_.step.request_id, "after": claim_.step.phase, "until": until}
    return finish_changing(session, claim_, now, _later_phases_statement(), later, **values)[0]


def release(session: Session, step: ErasureStep, now: dt.datetime) -> None:
    """A step that failed before is done: the later phases held back for it are due now. The caller commits."""
    driver.rowcount(session, _later_phases_statement(release=True), {"request": step.request_id,
                                                                      "after": step.phase, "until": now})


@functools.cache
def _later_phases_statement(release: bool = False):
    """The pending steps of a request's later phases, due no sooner than `until` (or, to `release`, no later)."""
    steps = table_of(ErasureStep)
    until = bindparam("until", type_=UTCDateTime())
    later = (steps.c.not_before > until) if release else (steps.c.not_before < until)
    return (update(steps)
            .where(steps.c.request_id == bindparam("request"), steps.c.phase > bindparam("after"),
                   steps.c.status == _constant(StepStatus.PENDING), later)
            .values(not_before=until))


def extend(session: Session, claim_: Claim, now: dt.datetime, lease: dt.timedelta = LEASE) -> bool:
    """Keep a long step's lease (e.g. between purge batches). Commits."""
    ok = finish(session, claim_, now, status=StepStatus.RUNNING, lease_owner=claim_.owner, lease_expires_at=now + lease)
    session.commit()
    return ok


def steps_of(session: Session, request_id: str) -> list[ErasureStep]:
    """A request's steps in position order, read only (detached, as a claim's): what its receipt reports."""
    rows = driver.mappings(session, _steps_statement(), {"request": request_id})
    return [_detached(ErasureStep, row) for row in rows]


@functools.cache
def _steps_statement():
    steps = table_of(ErasureStep)
    return select(*steps.c).where(steps.c.request_id == bindparam("request")).order_by(steps.c.position)


def request_of(session: Session, step_id: str) -> OptOutRequest | None:
    return session.scalar(select(OptOutRequest).join(ErasureStep).where(ErasureStep.id == step_id))
