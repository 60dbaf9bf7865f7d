"""A receipt step handed off to the log's sequencer: its receipt is signed and pooled, and the step stays
running, leased to the sequencer, until the batch that logs the receipt records it done.

The step holds no worker thread meanwhile. Its lease is long enough for a batch to come; if it runs out
(the sequencer died), a worker takes the step again, finds its receipt pooled or logged, and hands it off
again or finishes it: one receipt, one leaf, whatever happens.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging

from sqlalchemy import bindparam, exists, update
from sqlalchemy.orm import Session

from app.db import table_of
from erasure.models import ErasureStep, OptOutRequest, RequestStatus, StepKind, StepStatus

log = logging.getLogger(__name__)

HANDED_OFF = "the log's sequencer"  # lease_owner of a receipt step whose receipt waits in the pool
DEADLINE_WARNING = dt.timedelta(days=3)  # a request this near its deadline needs a person's attention


def lease(until: dt.datetime) -> dict:
    """What a handed-off step records (fenced, by the worker that ran it)."""
    return {"status": StepStatus.RUNNING, "lease_owner": HANDED_OFF, "lease_expires_at": until}


def settle_logged(session: Session, logged: dict[str, tuple[str, int]], now: dt.datetime) -> list[str]:
    """In the transaction that logs a batch: each handed-off receipt step of the batch's requests is done,
    with its receipt's id and leaf index, and their requests settled; the requests completed.

    Four statements for the whole batch, never a request's steps read one by one: a receipt step is
    the only step of its phase, and every later step waits for it, so nothing else of these requests
    finishes meanwhile. A step a worker took back after its lease ran out is left to that worker, which
    finds the receipt logged.
    """
    if not logged:
        return []
    conn = session.connection()
    conn.execute(_done_statement(), [{"request": request_id, "outcome": {"receipt_id": receipt_id, "leaf_index": leaf},
                                      "now": now} for request_id, (receipt_id, leaf) in logged.items()])
    batch = {"ids": sorted(logged), "now": now, "warned": now + DEADLINE_WARNING}
    release, complete, resume = _settle_statements()
    conn.execute(release, batch)
    completed = list(conn.execute(complete, batch).scalars())
    conn.execute(resume, batch)
    for request_id in completed:
        log.info("opt-out %s completed", request_id)
    return completed


@functools.cache
def _settle_statements():
    """A batch's requests, settled (settle_logged), with `ids` the batch's requests: built once, as a busy log
    runs them every second."""
    requests, steps = table_of(OptOutRequest), table_of(ErasureStep)
    ids, now = bindparam("ids", expanding=True), bindparam("now", type_=steps.c.not_before.type)
    # Their later steps (notify) are due now, even if an earlier failure of this step held them back.
    release = update(steps).where(steps.c.request_id.in_(ids), steps.c.status == StepStatus.PENDING,
                                  steps.c.not_before > now).values(not_before=now)
    waiting = exists().where(steps.c.request_id == requests.c.id, steps.c.status != StepStatus.DONE)
    complete = (update(requests).where(requests.c.id.in_(ids), requests.c.status != RequestStatus.COMPLETED, ~waiting)
                # Nothing left to find: drop what identified the person (as worker.settle does).
                .values(status=RequestStatus.COMPLETED, completed_at=now, identities_sealed=None, reason_text=None)
                .returning(requests.c.id))
    attention = exists().where(steps.c.request_id == requests.c.id, steps.c.status == StepStatus.NEEDS_ATTENTION)
    # A request that needed attention only for this step (its receipt waited too long) is back in progress.
    resume = update(requests).where(
        requests.c.id.in_(ids), requests.c.status.in_((RequestStatus.RECEIVED, RequestStatus.NEEDS_ATTENTION)),
        ~attention, requests.c.deadline >= bindparam("warned", type_=requests.c.deadline.type)
    ).values(status=RequestStatus.IN_PROGRESS)
    return release, complete, resume


@functools.cache
def _done_statement():
    """A batch's receipt steps, done: one statement, run once per receipt in one round trip."""
    steps = table_of(ErasureStep)
    return (update(steps)
            .where(steps.c.request_id == bindparam("request"), steps.c.kind == StepKind.RECEIPT,
                   steps.c.status == StepStatus.RUNNING, steps.c.lease_owner == HANDED_OFF)
            .values(status=StepStatus.DONE, done_at=bindparam("now", type_=steps.c.done_at.type), last_error=None,
                    lease_owner=None, lease_expires_at=None,
                    result=bindparam("outcome", type_=steps.c.result.type)))
