"""The erasure queue: steps are rows, claimed with a lease in one statement and finished fenced."""
from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass, field

from sqlalchemy import Integer, String, bindparam, exists, func, literal, select, union_all, update
from sqlalchemy.orm import Session, aliased

from app.db import UTCDateTime, write_lock
from erasure.models import ErasureStep, OptOutRequest

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=120)
RUNNABLE = ("pending", "retrying", "needs_attention")


@dataclass(frozen=True)
class Claim:
    """A step leased to `owner`, with the rows it runs on as they were at the claim (detached: read only)."""

    step_id: str
    owner: str
    step: ErasureStep | None = field(default=None, compare=False, repr=False)
    request: OptOutRequest | None = field(default=None, compare=False, repr=False)
    last_phase: bool = True  # no step of its request comes after it: finishing it may complete the request


@functools.cache
def _claim_statement(skip_locked: bool):
    """Built once: the claim runs every tick of every worker, and building it costs more than running it.

    One arm per status, each an ordered scan of ix_erasure_steps_claim (status, not_before) that stops
    at `limit` steps not blocked by an earlier phase (each a probe of ix_erasure_steps_request_phase):
    a claim reads about as many rows as it takes, however long the queue. One condition over all the
    statuses at once (status IN (...) OR ...) cannot be read in not_before order from that index, and
    PostgreSQL then joins and sorts every waiting step on every claim.

    The statuses and the limit are written into the SQL, not sent as parameters: the driver prepares a
    statement it runs often, and PostgreSQL's generic plan for `status != $1` expects no rows to pass
    and scans the whole table for the blocked check on every claim.
    """
    now = bindparam("now", type_=UTCDateTime())
    limit = bindparam("limit", type_=Integer(), literal_execute=True)
    earlier = aliased(ErasureStep)
    blocked = exists().where(earlier.request_id == ErasureStep.request_id, earlier.phase < ErasureStep.phase,
                             earlier.status != _constant("done"))
    arms = [(status, ErasureStep.not_before <= now) for status in RUNNABLE]
    arms.append(("running", ErasureStep.lease_expires_at < now))  # its worker died: take it over
    due = []
    for status, condition in arms:
        arm = (select(ErasureStep.id, ErasureStep.not_before)
               .where(ErasureStep.status == _constant(status), condition, ~blocked)
               .order_by(ErasureStep.not_before).limit(limit))
        if skip_locked:
            arm = arm.with_for_update(skip_locked=True)
        due.append(select(*arm.cte(f"due_{status}").c))
    candidates = union_all(*due).subquery("due")
    first = select(candidates.c.id).order_by(candidates.c.not_before).limit(limit)
    return (
        update(ErasureStep)
        .where(ErasureStep.id.in_(first.scalar_subquery()))
        .values(status=_constant("running"), lease_owner=bindparam("owner"),
                lease_expires_at=bindparam("expires", type_=UTCDateTime()), attempts=ErasureStep.attempts + 1)
        .returning(ErasureStep)  # the claimed rows themselves: the worker need not read them again
        .execution_options(synchronize_session=False, populate_existing=True)
    )


def _constant(value: str):
    return literal(value, String(), literal_execute=True)


@functools.cache
def _requests_statement():
    last_phase = (select(func.max(ErasureStep.phase)).where(ErasureStep.request_id == OptOutRequest.id)
                  .correlate(OptOutRequest).scalar_subquery())
    return select(OptOutRequest, last_phase).where(OptOutRequest.id.in_(bindparam("ids", expanding=True)))


def claim(session: Session, owner: str, now: dt.datetime, limit: int = 10, lease: dt.timedelta = LEASE) -> list[Claim]:
    """Lease up to `limit` runnable steps to `owner`, atomically, and commit.

    A step is runnable when it is due and every step of a lower phase in its request is done;
    a running step whose lease ran out (its worker died) is runnable again. On PostgreSQL the
    inner SELECT skips rows another worker is claiming; on SQLite BEGIN IMMEDIATE serializes.

    The claimed steps come back with their requests, read in the same transaction: one statement
    for the steps and one for their requests, however many are claimed.
    """
    dialect = session.get_bind().dialect.name
    write_lock(session)
    steps = list(session.scalars(_claim_statement(dialect == "postgresql"),
                                 {"now": now, "owner": owner, "expires": now + lease, "limit": limit}))
    requests = {}
    if steps:
        rows = session.execute(_requests_statement(), {"ids": sorted({s.request_id for s in steps})})
        requests = {request.id: (request, last) for request, last in rows}
    session.commit()
    return [Claim(s.id, owner, s, requests[s.request_id][0], s.phase >= requests[s.request_id][1]) for s in steps]


def finish(session: Session, claim_: Claim, now: dt.datetime, **values) -> bool:
    """Record a step's outcome only if this worker still holds its lease. The caller commits.

    False means the lease was lost (the step was taken over after it ran out): the outcome
    is dropped, which is safe because every step is idempotent.
    """
    values.setdefault("lease_owner", None)
    values.setdefault("lease_expires_at", None)
    done = session.execute(
        update(ErasureStep)
        .where(ErasureStep.id == claim_.step_id, ErasureStep.lease_owner == claim_.owner,
               ErasureStep.status == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if done != 1:
        log.warning("step %s: lease lost before it finished; its outcome is dropped", claim_.step_id)
        return False
    return True


def extend(session: Session, claim_: Claim, now: dt.datetime, lease: dt.timedelta = LEASE) -> bool:
    """Keep a long step's lease (e.g. between purge batches). Commits."""
    ok = finish(session, claim_, now, status="running", lease_owner=claim_.owner, lease_expires_at=now + lease)
    session.commit()
    return ok


def request_of(session: Session, step_id: str) -> OptOutRequest:
    return session.scalar(select(OptOutRequest).join(ErasureStep).where(ErasureStep.id == step_id))
