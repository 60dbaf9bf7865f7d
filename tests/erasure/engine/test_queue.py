"""The erasure queue (erasure/engine/queue.py) on a real database: steps claimed with a lease, phase by phase,
never by two workers at once, and finished fenced, so a worker whose lease was taken over records nothing."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from app.db import utcnow
from consent.suppression import Identity
from erasure.context import context_from_app
from erasure.engine import queue
from erasure.models import ErasureStep
from erasure.optout import service

LEASE = dt.timedelta(seconds=60)


@pytest.fixture
def now() -> dt.datetime:
    return utcnow()


@pytest.fixture
def submit(app, sessions, now):
    """Opt-outs a platform made for accounts nobody signed up with: their steps are due at `now`."""
    ctx = context_from_app(app)

    def make(count: int = 1) -> list[str]:
        ids = []
        with sessions() as db:
            for n in range(count):
                submitted = service.submit(db, ctx, user=None, grants=[], scope="all", now=now, source="service",
                                           given=[Identity("account", f"{9000 + n}", "demo")])
                ids.append(submitted.request.id)
            db.commit()
        return ids

    return make


def claim(sessions, owner: str, at: dt.datetime, limit: int = 100) -> list[queue.Claim]:
    with sessions() as db:
        return queue.claim(db, owner, at, limit, LEASE)


def finish(sessions, claimed: queue.Claim, at: dt.datetime, **values) -> bool:
    with sessions() as db:
        done = queue.finish(db, claimed, at, **values)
        db.commit()
        return done


def done(sessions, claimed: queue.Claim, at: dt.datetime) -> bool:
    return finish(sessions, claimed, at, status="done", done_at=at, result={"by": claimed.owner})


def steps_of(sessions, request_id: str) -> list[ErasureStep]:
    with sessions() as db:
        return list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                               .order_by(ErasureStep.position)))


# --- claiming ----------------------------------------------------------------------------------------

def test_a_claim_leases_the_due_steps_of_the_first_phase_only(sessions, submit, now):
    (request_id,) = submit()
    laid = steps_of(sessions, request_id)
    first = [s.id for s in laid if s.phase == laid[0].phase]
    assert 1 <= len(first) < len(laid)

    claimed = claim(sessions, "w1", now)
    assert sorted(c.step_id for c in claimed) == sorted(first)
    assert all(c.owner == "w1" and c.request.id == request_id for c in claimed)
    assert not any(c.last_phase for c in claimed)  # finishing these cannot complete the request
    by_id = {s.id: s for s in steps_of(sessions, request_id)}
    for step_id in first:
        step = by_id[step_id]
        assert (step.status, step.lease_owner, step.attempts) == ("running", "w1", 1)
        assert step.lease_expires_at == now + LEASE
    assert {s.status for s in by_id.values() if s.id not in first} == {"pending"}
    assert claim(sessions, "w2", now) == []  # the next phase waits for this one


def test_a_claim_passes_over_the_steps_of_a_network_or_service_at_its_max_in_flight(sessions, submit, now):
    request_ids = submit(2)
    laid = [s for r in request_ids for s in steps_of(sessions, r)]
    first = [s for s in laid if s.phase == laid[0].phase]
    full = (first[0].kind, first[0].target)  # its calls at once are all taken, in this worker or another
    assert full[0] in ("revoke", "purge")
    with sessions() as db:
        passing_over = queue.claim(db, "w1", now, 100, LEASE, busy={full, ("revoke", "elsewhere")})
    assert sorted(c.step_id for c in passing_over) == sorted(s.id for s in first if (s.kind, s.target) != full)
    assert sorted(c.step_id for c in claim(sessions, "w2", now)) == sorted(
        s.id for s in first if (s.kind, s.target) == full)  # once it takes calls again


def test_a_step_is_not_claimed_before_it_is_due_and_a_claim_takes_no_more_than_its_limit(sessions, submit, now):
    submit(3)
    assert claim(sessions, "w1", now - dt.timedelta(seconds=1)) == []
    assert len(claim(sessions, "w1", now, limit=2)) == 2


def test_the_next_phase_is_claimed_once_every_step_of_the_one_before_is_done(sessions, submit, now):
    (request_id,) = submit()
    claimed = claim(sessions, "w1", now)
    for c in claimed[:-1]:
        assert done(sessions, c, now)
    assert claim(sessions, "w1", now) == []  # one step of the phase is still running
    assert done(sessions, claimed[-1], now)

    laid = steps_of(sessions, request_id)
    second_phase = sorted({s.phase for s in laid})[1]
    [following] = claim(sessions, "w1", now)
    assert [s.id for s in laid if s.phase == second_phase] == [following.step_id]


# --- two claimants -----------------------------------------------------------------------------------

def test_two_claimants_never_take_the_same_step(sessions, submit, now):
    submit(12)
    start, taken, errors = threading.Barrier(2), {"w1": [], "w2": []}, []

    def claimant(owner: str) -> None:
        try:
            start.wait()
            while got := claim(sessions, owner, now, limit=3):
                taken[owner] += [c.step_id for c in got]
        except Exception as exc:  # surfaced below, with the claimant's name
            errors.append((owner, exc))

    threads = [threading.Thread(target=claimant, args=(owner,)) for owner in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []

    every = taken["w1"] + taken["w2"]
    assert len(every) == len(set(every))  # no step went to both, nor twice to one
    with sessions() as db:
        running = {s.id: s.lease_owner for s in db.scalars(select(ErasureStep).where(ErasureStep.status == "running"))}
    assert sorted(running) == sorted(every)  # and every due step was taken
    assert all(running[step_id] == owner for owner, ids in taken.items() for step_id in ids)


# --- leases and fenced finishing -----------------------------------------------------------------------

def test_a_step_whose_lease_ran_out_is_taken_over_and_its_first_worker_cannot_record(sessions, submit, now):
    submit(2)  # a step each in the first phase
    [first] = claim(sessions, "w1", now, limit=1)
    [other] = claim(sessions, "w2", now + LEASE / 2, limit=1)
    assert other.step_id != first.step_id  # still leased to w1: w2 gets another step

    later = now + LEASE + dt.timedelta(seconds=1)  # w1 went quiet for longer than its lease
    taken_over = [c for c in claim(sessions, "w2", later) if c.step_id == first.step_id]
    assert len(taken_over) == 1

    assert finish(sessions, first, later, status="done", done_at=later, result={"by": "w1"}) is False
    request_id = first.request.id
    [step] = [s for s in steps_of(sessions, request_id) if s.id == first.step_id]
    assert (step.status, step.lease_owner, step.attempts, step.result) == ("running", "w2", 2, {})

    assert done(sessions, taken_over[0], later) is True
    [step] = [s for s in steps_of(sessions, request_id) if s.id == first.step_id]
    assert (step.status, step.lease_owner, step.lease_expires_at, step.result) == ("done", None, None, {"by": "w2"})


def test_a_step_already_done_cannot_be_recorded_again(sessions, submit, now):
    submit()
    [claimed] = claim(sessions, "w1", now, limit=1)
    assert done(sessions, claimed, now) is True
    assert done(sessions, claimed, now) is False


def test_a_worker_that_extends_its_lease_keeps_the_step(sessions, submit, now):
    (request_id,) = submit()
    [claimed] = claim(sessions, "w1", now, limit=1)
    with sessions() as db:
        assert queue.extend(db, claimed, now + LEASE / 2, LEASE) is True
    past_the_first_lease = now + LEASE + dt.timedelta(seconds=1)
    assert claimed.step_id not in [c.step_id for c in claim(sessions, "w2", past_the_first_lease)]
    assert done(sessions, claimed, past_the_first_lease) is True
