"""The worker loop: claim due steps, run them, record each outcome fenced, and settle the requests."""
from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from typing import Any, cast

import requests
from flask import Flask
from sqlalchemy import CursorResult, Table, bindparam, case, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db import table_of, truncate_wal, utcnow, write_lock
from erasure.context import ErasureContext, context_from_app
from erasure.engine import handoff, queue, slots, steps
from erasure.engine.in_flight import Capped, InFlight
from erasure.engine.network_http import NetworkSession, ProxySettings
from erasure.engine.revocation import TIMEOUT, Outcome, next_delay
from erasure.engine.sequencing import Sequencing
from erasure.models import ErasureStep, OptOutRequest, RequestStatus, StepKind, StepStatus

log = logging.getLogger(__name__)

# A network or a store's service that answers "wait" (Retry-After, on a 429 or a 503) for this long or longer is
# asked nothing more until then, by any worker (queue.hold): in a crowd's leaving, every revocation or purge there
# would otherwise be refused in turn, and count an attempt each. Shorter waits are left to each step's own retry.
HOLD_FROM = 10.0
HOLD_SLACK = dt.timedelta(seconds=5)
HOLDS = (StepKind.REVOKE, StepKind.PURGE)  # the kinds whose target is one network, or one store
HOLDS_READ_EVERY = 1.0  # seconds: how soon a worker learns of a hold another worker was told of
QUICK_RETRIES = 5  # after these, the step shows as needs_attention, and keeps retrying
MAX_DELAY = 600.0
DEADLINE_WARNING = handoff.DEADLINE_WARNING


# Steps one worker process runs at once. A step spends most of its time waiting on a network or a store, not
# on the CPU: with networks answering in 100 ms, one worker made 8.8 opt-outs/s with 4 threads and 30.6/s with
# 16, the machine's 2 CPUs 73% busy (2026-12-07, PostgreSQL); with 24 they were 85% busy, for 34.7/s.
THREADS = 16


class Worker:
    def __init__(self, app: Flask, threads: int = THREADS, batch: int | None = None) -> None:
        self.app = app
        self.ctx: ErasureContext = context_from_app(app)
        self.sessions: sessionmaker[Session] = app.extensions["ownstory_db"]["sessionmaker"]
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = dt.timedelta(seconds=app.config.get("ERASURE_LEASE_SECONDS", 120))
        # Claim no more than can start at once: a lease runs from the claim, so a step left waiting
        # in this worker's queue would expire there, and another worker would run it a second time.
        self.threads = threads
        self.batch = batch or threads
        self.retry_base = float(app.config.get("ERASURE_RETRY_BASE_SECONDS", 2.0))
        # (connect, read) seconds for each call to a network; tests shorten it to see a timeout quickly.
        self.http_timeout = app.config.get("ERASURE_HTTP_TIMEOUT", TIMEOUT)
        self._proxies = ProxySettings()  # read once: see network_http
        self.in_flight = InFlight(wake_seconds=self.lease.total_seconds() / 4,
                                  shared=slots.for_engine(app.extensions["ownstory_db"]["engine"]))
        # (kind, target): until when that network or service asked this worker, or another (read from the database
        # at most every HOLDS_READ_EVERY), to wait. queue.hold moves the steps due then, not those claimed already,
        # waiting for max_in_flight, or of people who leave meanwhile: these are put back.
        self.held: dict[tuple[str, str], dt.datetime] = {}
        self._holds_read_at = -HOLDS_READ_EVERY
        self._holding = threading.Lock()  # two threads told at once: the later end stays
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="erasure")
        self._local = threading.local()
        self._swept_at: dt.datetime | None = None
        self._round = threading.Lock()  # held while a round claims and runs; close() waits for it
        self._closing = threading.Event()
        self._wal = self.app.extensions["ownstory_db"]["engine"].dialect.name == "sqlite"  # see _scrub_the_log
        self._chain_budget = threading.Semaphore(0)  # the steps threads may still claim for themselves (drain)
        self.sequencing = Sequencing(self.sessions, self.ctx)  # the receipts this worker handed off

    def run_once(self, now: dt.datetime | None = None) -> int:
        """Claim a batch of due steps and run them; returns how many ran (0 once closing)."""
        with self._round:
            if self._closing.is_set():
                return 0  # claiming now would leave steps leased to a worker that is going away
            claims = self._claim(self.batch, now or utcnow())
            list(self.pool.map(self._run_claim, claims))
            if self.sequencing.pending():
                self._sequence(patient=True)
            return len(claims)

    def drain(self, max_rounds: int = 1000) -> int:
        """Run until no step is due (each tick of `flask worker`, tests, benchmarks); returns how many ran.

        A thread that is done claims its next step at once, rather than waiting for the slowest step of
        a batch. Claims never exceed the threads that are free, so no claimed step waits for a thread
        while its lease runs. `max_rounds` bounds the rounds of claims, and the steps each thread claims after
        its first: a step that fails and is due again at once cannot keep a thread forever.

        The receipts its steps hand off are sequenced at most once a second while it is busy, or as soon as
        EVERY_LEAVES are waiting (erasure/engine/sequencing.py), and always before it returns.
        """
        total = 0
        with self._round:
            self._chain_budget = threading.Semaphore(max_rounds)
            running: set[Future] = set()
            gave_up = False  # waiting for another sequencer that held the log's lease (sequencing.WAIT)
            try:
                for _ in range(max_rounds):
                    if self._closing.is_set():
                        break
                    free = self.threads - len(running)
                    claims = self._claim(min(free, self.batch), utcnow()) if free else []
                    running |= {self.pool.submit(self._run_chain, claim) for claim in claims}
                    total += len(claims)
                    if not running:  # nothing due, nothing under way
                        if self.sequencing.pending():
                            self._sequence(patient=True)
                            if not self.sequencing.pending():
                                continue  # logged: their requests' later steps (notify) are due now
                            gave_up = True
                        break
                    # A thread runs steps for as long as it finds one due, claiming each in the transaction
                    # that records the last; one that found none frees its thread here.
                    done, running = wait(running, timeout=self.sequencing.wake_in(), return_when=FIRST_COMPLETED)
                    total += _chained(done)
                    self._sequence(patient=False)
            finally:
                total += _chained(wait(running).done)
                if self.sequencing.pending() and not gave_up:  # closing: one try; the leases bring back the rest
                    self._sequence(patient=True)
        return total

    def _sequence(self, patient: bool) -> None:
        """The log's pool sequenced: now and until it is empty (`patient`, unless closing), or only if due."""
        logged = self.sequencing.turn(patient=True, stop=self._closing) if patient else self.sequencing.when_due()
        if logged and self._wal:  # a batch can complete requests, dropping their identities: see _scrub_the_log
            truncate_wal(self.app.extensions["ownstory_db"]["engine"])

    def _claim(self, limit: int, now: dt.datetime) -> list[queue.Claim]:
        with self.sessions() as session:
            if self._swept_at is None or now - self._swept_at > dt.timedelta(minutes=1):
                sweep_deadlines(session, now)
                self._swept_at = now
            return self._claim_passing_over(session, now, limit, commit=True)

    def _claim_next(self, session: Session) -> queue.Claim | None:
        """This thread's next step, claimed in the transaction that records its last one; the caller commits."""
        claims = self._claim_passing_over(session, utcnow(), 1, commit=False)
        return claims[0] if claims else None

    def _claim_passing_over(self, session: Session, now: dt.datetime, limit: int, commit: bool) -> list[queue.Claim]:
        """A claim that passes over the revocations and purges at networks and services at their max_in_flight."""
        busy = self.in_flight.to_pass_over()
        if busy is None:
            return []  # passing them over found nothing else lately: see InFlight.to_pass_over
        claims = queue.claim(session, self.owner, now, limit, self.lease, commit=commit, busy=busy)
        self._learn_holds(session, now)  # after the claim, which takes the write lock before it reads
        self.in_flight.claimed(busy, short=len(claims) < limit)
        return claims

    def _learn_holds(self, session: Session, now: dt.datetime) -> None:
        """The holds other workers were told of, read at most every HOLDS_READ_EVERY: the steps this worker claims
        there meanwhile are put back untried (_held_until), rather than ask again and be told again."""
        if time.monotonic() - self._holds_read_at < HOLDS_READ_EVERY:
            return
        self._holds_read_at = time.monotonic()  # first: the other threads do not read them too
        for key, until in queue.holds(session, now).items():
            self._hold(key, until)

    def _hold(self, key: tuple[str, str], until: dt.datetime) -> None:
        with self._holding:
            self.held[key] = max(until, self.held.get(key, until))

    def close(self) -> None:
        """Stop claiming, let the steps under way finish and record their outcomes, then stop."""
        self._closing.set()
        with self._round:
            self.pool.shutdown(wait=True)

    def _http(self) -> requests.Session:
        if not hasattr(self._local, "http"):
            self._local.http = NetworkSession(self._proxies)
        return self._local.http

    def _run_claim(self, claim: queue.Claim) -> None:
        """Run one claimed step and record its outcome (run_once: each batch is claimed on its own)."""
        with self.app.app_context(), self.sessions() as session:
            self._run_one(session, claim, chain=False)

    def _run_chain(self, claim: queue.Claim) -> int:
        """Run a claimed step, then the next one due, claimed in the transaction that records the outcome,
        until none is due or the worker is closing; returns how many steps this thread claimed after the first."""
        claimed = 0
        with self.app.app_context(), self.sessions() as session:
            following = self._run_one(session, claim, chain=True)
            while following is not None:
                claimed += 1
                following = self._run_one(session, following, chain=True)
        return claimed

    def _run_one(self, session: Session, claim: queue.Claim, chain: bool) -> queue.Claim | None:
        try:
            return self._run(session, claim, chain)
        except Exception:
            # A bug must not kill the worker or lose the step: it is retried, and shown.
            log.exception("step %s failed unexpectedly", claim.step_id)
            session.rollback()
            return self._record(session, claim, steps.Result(retry=True, error="an unexpected error; see the logs"),
                                chain)

    def _run(self, session: Session, claim: queue.Claim, chain: bool) -> queue.Claim | None:
        # The step and its request come with the claim, read in its transaction: no read here, and
        # no transaction held open while the step runs (a step may run for a while).
        step, request = claim.step, claim.request
        renewed = [time.monotonic()]

        def heartbeat(result: dict | None = None, params: dict | None = None, renew: bool = False) -> None:
            """Record progress or new params (always), or keep the lease (once a third of it has gone by, or
            now: `renew`).

            New params are a revoke step's rotated tokens: the network has spent the old ones."""
            if (result is None and params is None and not renew
                    and time.monotonic() - renewed[0] < self.lease.total_seconds() / 3):
                return
            values = {"status": StepStatus.RUNNING, "lease_owner": claim.owner,
                      "lease_expires_at": utcnow() + self.lease}
            if result is not None:
                values["result"] = result
            if params is not None:
                values["params"] = params
            if not queue.finish(session, claim, utcnow(), **values):
                raise LeaseLost(claim.step_id)
            session.commit()
            renewed[0] = time.monotonic()

        keep = functools.partial(heartbeat, renew=True)
        try:
            with self.in_flight.call(self._capped(step), keep):  # max_in_flight
                held = self._held_until(step)
                if held is not None:
                    self._put_back(session, claim, held)
                    return None
                result = steps.run(session, self.ctx, step, request, utcnow(), self._http(), heartbeat,
                                   timeout=self.http_timeout, store_call=functools.partial(self._store_call, keep))
        except LeaseLost:
            session.rollback()
            return None
        return self._record(session, claim, result, chain)

    def _capped(self, step: ErasureStep) -> Capped | None:
        """The network's or service's max_in_flight the step keeps to: a revocation's network's, or the store's a
        purge step empties whole (one that does not say one, or is no longer listed, keeps to none)."""
        if step.kind == StepKind.PURGE:
            return self._capped_store(step.target)
        network = self.ctx.networks.get(step.target) if step.kind == StepKind.REVOKE else None
        limit = network.revocation.max_in_flight if network else None
        return None if limit is None else Capped(step.kind, step.target, limit)

    def _capped_store(self, name: str) -> Capped | None:
        """A store's max_in_flight, for its purge steps and verify's erasures there."""
        try:
            limit = self.ctx.datamap.store(name).max_in_flight
        except KeyError:
            return None  # the step says why, when it runs
        return None if limit is None else Capped(StepKind.PURGE, name, limit)

    def _store_call(self, keep_lease: Callable[[], None], name: str) -> AbstractContextManager[None]:
        """One of a store's calls, for verify's erasures there: held to its max_in_flight as its purge steps are."""
        return self.in_flight.call(self._capped_store(name), keep_lease)

    def _held_until(self, step: ErasureStep) -> dt.datetime | None:
        """Until when the step's network or service asked this worker to wait, if it still does and the step was not
        moved past that already (one the hold moved was claimed because the claim's clock says the wait is over)."""
        held = self.held.get((step.kind, step.target))
        if held is None or step.not_before >= held - HOLD_SLACK or utcnow() >= held - HOLD_SLACK:
            return None
        return held

    def _put_back(self, session: Session, claim: queue.Claim, until: dt.datetime) -> None:
        """A step not tried, because its network or service asked to wait until `until`: it waits as long, as do
        its request's later phases, and the attempt its claim counted is given back."""
        attempts = claim.step.attempts - 1
        write_lock(session)
        queue.finish_holding_back(session, claim, utcnow(), until, attempts=attempts, not_before=until,
                                  status=StepStatus.RETRYING if attempts else StepStatus.PENDING)
        session.commit()

    def _record(self, session: Session, claim: queue.Claim, result: steps.Result, chain: bool = False
                ) -> queue.Claim | None:
        """Record a step's outcome, fenced; with `chain`, claim this thread's next step in the same transaction."""
        if result.handed_off:
            return self._hand_off(session, claim, chain)
        now = utcnow()
        write_lock(session)
        step = claim.step
        values: dict[str, Any]
        if result.done:
            values = {"status": StepStatus.DONE, "done_at": now, "last_error": None, "result": result.result}
            if result.clear_params:
                values["params"] = {k: v for k, v in step.params.items() if not k.endswith("_token")}
        else:
            delay = next_delay(Outcome("retry", result.retry_after), step.attempts, base=self.retry_base,
                               cap=MAX_DELAY)
            attention = result.attention or step.attempts >= QUICK_RETRIES
            values = {"status": StepStatus.NEEDS_ATTENTION if attention else StepStatus.RETRYING,
                      "last_error": result.error, "not_before": now + dt.timedelta(seconds=delay)}
            if result.result:  # why it waits (a revocation's); a purge's progress, never set here, is kept
                values["result"] = result.result
            log.info("step %s (%s %s): attempt %d failed, next in %.0fs", step.id, step.kind, step.target,
                     step.attempts, delay)
        change, changed = _folded_change(session, claim, result, now), False
        if change is not None:  # PostgreSQL: the request's change rides on the finish's statement
            finished, changed = queue.finish_changing(session, claim, now, change[0], change[1], **values)
        else:
            finished = queue.finish(session, claim, now, **values)
        if not finished:
            session.rollback()  # another worker took the step over; its run counts, not this one
            return None
        if not result.done:
            queue.hold_back(session, step, values["not_before"])
            asked = result.retry_after or 0.0
            if step.kind in HOLDS and asked >= HOLD_FROM:
                until, key = now + dt.timedelta(seconds=asked), (step.kind, step.target)
                self._hold(key, until)
                moved = queue.hold(session, step.kind, step.target, until, step.phase, HOLD_SLACK)
                if moved:
                    log.info("%s asked to wait %.0fs: %d %s steps there wait as long", step.target, asked, moved,
                             step.kind)
        elif step.attempts > 1:
            queue.release(session, step, now)
        status: str | None = None
        if change is not None and (changed or change[2] != RequestStatus.COMPLETED):
            status = change[2] if changed else None  # moved on or completed; or moved on first by another step
            if status == RequestStatus.COMPLETED:
                log.info("opt-out %s completed", step.request_id)
        elif _changes_status(claim, result):
            # Failed, a retry that went through, or a last step with another still left: count under the lock.
            status = settle(session, claim, result.done, now, try_completing=change is None)
        scrub = result.done and (step.kind == StepKind.FORGET or status == RequestStatus.COMPLETED) and self._wal
        following = None
        # Only after a step that went through: one that failed goes back to drain's own loop, as before, rather
        # than being taken again at once by the thread that failed it. Not before a scrub of the log either,
        # which may wait for readers while the next step's lease runs.
        if (chain and result.done and not scrub and not self._closing.is_set()
                and self._chain_budget.acquire(blocking=False)):
            following = self._claim_next(session)
        session.commit()
        if scrub:
            _scrub_the_log(self.app.extensions["ownstory_db"]["engine"], step.request_id)
        return following

    def _hand_off(self, session: Session, claim: queue.Claim, chain: bool) -> queue.Claim | None:
        """A receipt step whose receipt waits in the log's pool (pooled in this transaction): leased to the
        sequencer, whose batch records it done and settles its request (erasure/engine/handoff.py)."""
        now = utcnow()
        until = now + self.lease
        # notify waits for the batch, out of every claim's way (queue.hold_back)
        if not queue.finish_holding_back(session, claim, now, until, **handoff.lease(until)):
            session.rollback()  # another worker took the step over; its run counts, not this one
            return None
        following = None
        if chain and not self._closing.is_set() and self._chain_budget.acquire(blocking=False):
            following = self._claim_next(session)
        session.commit()
        self.sequencing.handed_off()
        return following


def _chained(done: set[Future]) -> int:
    """The steps finished threads claimed after their first; a thread that failed is logged (its steps' leases
    run out, and they are taken over)."""
    total = 0
    for future in done:
        if future.exception() is not None:
            log.error("a worker thread failed", exc_info=future.exception())
        else:
            total += future.result()
    return total


def _scrub_the_log(engine: Engine, request_id: str) -> None:
    """The person's records (and, on completion, the request's reason and identities) are gone from the tables;
    on SQLite their old pages stay in the write-ahead log until a checkpoint: empty it now."""
    if not truncate_wal(engine):
        log.info("opt-out %s: readers kept the write-ahead log busy; the next opt-out's checkpoint empties it",
                 request_id)


def _folded_change(session: Session, claim: queue.Claim, result: steps.Result, now: dt.datetime):
    """On PostgreSQL, the change settle() would make to the request for the usual outcomes, as (statement,
    parameters, status) to run in the finish's own statement: a first step that went through moves a received
    request on; a step of the last phase that went through completes it when no other step is left (when one is,
    settle counts under the lock as always). None otherwise, and on SQLite (no UPDATE in a WITH)."""
    if not result.done or session.get_bind().dialect.name != "postgresql":
        return None
    if claim.last_phase:
        return (_complete_statement(), {"optout_id": claim.request.id, "now": now, "except_step": claim.step_id},
                RequestStatus.COMPLETED)
    if claim.step.attempts == 1 and claim.request.status == RequestStatus.RECEIVED:
        return _move_on_statement(), {"optout_id": claim.request.id}, RequestStatus.IN_PROGRESS
    return None


def _changes_status(claim: queue.Claim, result: steps.Result) -> bool:
    """Whether recording this outcome can change its request's status, which settle() derives from the steps.

    A first attempt that went through, with steps of a later phase still to come, changes nothing: those
    steps are not done, so the request is not complete, and this step was never the one needing
    attention. Its request's status is left alone, and its row not locked, unless it still says received.
    (A request nearing its deadline is marked by sweep_deadlines.)
    """
    return (not result.done or claim.step.attempts > 1 or claim.last_phase
            or claim.request.status == RequestStatus.RECEIVED)


class LeaseLost(Exception):
    pass


def settle(session: Session, claim: queue.Claim, done: bool, now: dt.datetime, try_completing: bool = True) -> str:
    """Derive the request's status from its steps, in the transaction that recorded the claimed step's outcome
    (`done`: whether it went through). Returns the status.

    Core statements on the request's row, never its steps' rows loaded one by one: a first step that went
    through only moves a received request on; a step of the last phase that went through completes the request
    in one statement when no other step is left (_complete_statement); otherwise one count of the steps not yet
    done, and of those needing attention, decides. On PostgreSQL the request's row is locked first, in a statement
    of its own, so that two steps finishing at once settle one after the other and the second counts the first as
    done.
    """
    requests, steps_ = _tables()
    request_id = claim.request.id
    if done and claim.step.attempts == 1 and not claim.last_phase:
        # Its request has no step needing attention (that step's failure would have settled it so).
        session.connection().execute(_move_on_statement(), {"optout_id": request_id})
        return RequestStatus.IN_PROGRESS
    conn = session.connection()
    completing = {"optout_id": request_id, "now": now, "except_step": ""}
    if done and claim.last_phase and try_completing and conn.execute(_complete_statement(), completing).rowcount:
        log.info("opt-out %s completed", request_id)
        return RequestStatus.COMPLETED
    current = select(requests.c.status).where(requests.c.id == request_id)
    if session.get_bind().dialect.name == "postgresql":
        current = current.with_for_update()
    status = conn.execute(current).scalar_one()
    if status == RequestStatus.COMPLETED:
        return status
    waiting, attention = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((steps_.c.status == StepStatus.NEEDS_ATTENTION, 1),
                                                         else_=0)), 0))
        .where(steps_.c.request_id == request_id, steps_.c.status != StepStatus.DONE)).one()
    values: dict[str, Any]
    if not waiting:
        # Nothing left to find: drop what identified the person.
        values = {"status": RequestStatus.COMPLETED, "completed_at": now, "identities_sealed": None,
                  "reason_text": None}
        log.info("opt-out %s completed", request_id)
    elif attention or claim.request.deadline - now < DEADLINE_WARNING:  # a deadline never moves
        values = {"status": RequestStatus.NEEDS_ATTENTION}
    else:
        values = {"status": RequestStatus.IN_PROGRESS}
    if values["status"] != status or not waiting:
        conn.execute(update(requests).where(requests.c.id == request_id).values(values))
    return values["status"]


@functools.cache
def _complete_statement():
    """Complete the request if no step of it is left, in one statement: what the last phase's steps usually find.

    Safe without the row lock settle takes otherwise: steps never go back from done, and a step of the last
    phase is claimed only once every earlier phase is done, so the statement can miss a sibling finishing in
    another transaction at the same moment (it then matches nothing, and settle counts under the lock), never
    complete a request with a step left.
    """
    requests, steps_ = _tables()
    # except_step: the step whose finish this rides on (finish_changing), which the statement sees as running
    left = select(steps_.c.id).where(steps_.c.request_id == requests.c.id, steps_.c.status != StepStatus.DONE,
                                     steps_.c.id != bindparam("except_step"))
    # Nothing left to find: drop what identified the person.
    return (update(requests)
            .where(requests.c.id == bindparam("optout_id"), requests.c.status != RequestStatus.COMPLETED,
                   ~left.exists())
            .values(status=RequestStatus.COMPLETED, completed_at=bindparam("now"), identities_sealed=None,
                    reason_text=None))


@functools.cache
def _move_on_statement():
    """A received request is in progress once a step of it went through."""
    requests, _ = _tables()
    return (update(requests)
            .where(requests.c.id == bindparam("optout_id"), requests.c.status == RequestStatus.RECEIVED)
            .values(status=RequestStatus.IN_PROGRESS))


@functools.cache
def _tables() -> tuple[Table, Table]:
    return table_of(OptOutRequest), table_of(ErasureStep)


def sweep_deadlines(session: Session, now: dt.datetime) -> int:
    """Requests near their deadline need a person's attention, whatever their steps say."""
    count = cast(CursorResult[Any], session.execute(
        update(OptOutRequest)
        .where(OptOutRequest.status.in_((RequestStatus.RECEIVED, RequestStatus.IN_PROGRESS)),
               OptOutRequest.deadline < now + DEADLINE_WARNING)
        .values(status=RequestStatus.NEEDS_ATTENTION)
        .execution_options(synchronize_session=False)
    )).rowcount
    session.commit()
    return count
