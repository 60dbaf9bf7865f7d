"""Real `flask worker` processes against one database: killed mid-step, or two at once, nothing lost or done twice."""
from __future__ import annotations

from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from erasure.engine.worker import THREADS
from erasure.models import ErasureStep, OptOutRequest
from tests.conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, db_session, takes_at_once
from tests.erasure.engine.helpers_processes import (
    StoreWriteLock,
    column_names,
    demo_revoked,
    make_crowd,
    naming,
    snapshot,
    submit_all,
    to_wal,
    wait_for,
    without,
)
from tests.erasure.helpers_optout import purged_rows

QUICK_LEASE = {"erasure_lease_seconds": 2, "erasure_retry_base_seconds": 0.05}
SHORT_LEASE = {"erasure_lease_seconds": 4, "erasure_retry_base_seconds": 0.05}


def all_steps(app, kind: str | None = None) -> list[ErasureStep]:
    with db_session(app) as db:
        query = select(ErasureStep).order_by(ErasureStep.request_id, ErasureStep.position)
        return list(db.scalars(query if kind is None else query.where(ErasureStep.kind == kind)))


def completed(app) -> int:
    with db_session(app) as db:
        return db.scalar(select(func.count()).select_from(OptOutRequest).where(OptOutRequest.status == "completed"))


def introspected_active(demo_network, token: str) -> bool:
    answer = requests.post(f"{demo_network.url}/oauth/introspect", data={"token": token},
                           auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), timeout=10)
    answer.raise_for_status()
    return answer.json()["active"]


def assert_everything_done_once(app, crowd, request_ids, before, platform_url, mail_sink, workers,
                                kills: int = 0):
    """What the people, the platform and an operator can see once every request is through."""
    by_request = dict(zip(request_ids, crowd, strict=True))
    with db_session(app) as db:
        requests_ = list(db.scalars(select(OptOutRequest)))
        assert sorted(r.id for r in requests_) == sorted(request_ids)
        assert all(r.status == "completed" and r.completed_at is not None for r in requests_)
    steps = all_steps(app)
    assert {s.status for s in steps} == {"done"}
    for request_id, member in by_request.items():
        mine = [s for s in steps if s.request_id == request_id]
        revokes = [s for s in mine if s.kind == "revoke"]
        # One recorded revocation per grant, confirmed by the network.
        assert len(revokes) == 1 and revokes[0].result["outcome"] in ("revoked", "already_invalid")
        # Each row counted once: exactly the rows the person had before leaving, not more after a rerun,
        # and none again by verify once access was revoked.
        counted = purged_rows(mine)
        assert counted == member.held, member.account
        assert next(s for s in mine if s.kind == "verify").result["late_rows"] == [], member.account

    # The platform: every leaver's rows gone, everyone else's exactly as before (bar the leavers'
    # names taken out of endorsements they received).
    accounts = {m.account for m in crowd}
    handles = {m.handle for m in crowd}
    emails = {m.email for m in crowd}
    assert snapshot(platform_url) == without(before, accounts, handles, emails, column_names(platform_url))
    assert naming(platform_url, accounts | handles | emails) == []

    # Each person is told. Mail is at least once: a worker killed (or whose short test lease ran out)
    # after the mail server took a message but before the step was recorded sends it again on takeover.
    told = Counter(m.to for m in mail_sink.mails if m.subject == "Your opt-out is complete")
    assert set(told) == {m.email for m in crowd}
    assert max(told.values()) <= 1 + kills

    # No token reached a log line of any worker.
    logs = "".join(w.output for w in workers)
    for member in crowd:
        assert member.access_token not in logs and member.refresh_token not in logs


@pytest.mark.slow
def test_a_worker_killed_mid_step_loses_nothing_and_does_nothing_twice(app, demo_network, platform_url, start_worker,
                                                                       mail_sink, demo_state):
    to_wal(platform_url)
    crowd = make_crowd(app, demo_network.app, platform_url, 10)
    before = snapshot(platform_url)
    request_ids = submit_all(app, crowd)

    # 1. Kill a worker while revocations are on the wire: each call takes 1.5 s at the network, so a
    # step lasts 3 s and the kill cannot slip in between two of them on a busy machine.
    demo_state.faults.set("revoke", delay=1.5)
    first = start_worker(**QUICK_LEASE)
    wait_for(lambda: any(s.status == "done" for s in all_steps(app, "revoke")), 60,
             "the first worker to have revoked one grant")
    # Steps claimed together finish together: wait for one claimed after that, which has its whole 3 s to go.
    earlier = {s.id for s in all_steps(app, "revoke") if s.status != "pending"}
    wait_for(lambda: any(s.status == "running" and first.owns(s.lease_owner) and s.id not in earlier
                         for s in all_steps(app, "revoke")), 60, "the first worker to start revoking another grant")
    first.kill()
    cut_revokes = {s.id for s in all_steps(app, "revoke") if s.status == "running" and first.owns(s.lease_owner)}
    assert cut_revokes, "the kill landed between steps, not in one"
    demo_state.faults.clear("revoke")

    # 2. Kill the next worker in the middle of purges: it has counted the person's rows and is
    # waiting to delete them, because another program holds the platform store's write lock.
    with StoreWriteLock(platform_url):
        second = start_worker(**QUICK_LEASE)
        wait_for(lambda: any(s.status == "running" and second.owns(s.lease_owner) and "categories" in s.result
                             for s in all_steps(app, "purge")), 60, "the second worker to be in the middle of a purge")
        second.kill()
    cut_purges = {s.id for s in all_steps(app, "purge") if s.status == "running" and second.owns(s.lease_owner)}
    assert cut_purges

    # 3. Two fresh workers take over once the dead ones' leases run out, and finish everything.
    rest = [start_worker(**QUICK_LEASE), start_worker(**QUICK_LEASE)]
    wait_for(lambda: completed(app) == len(crowd), 90, "every request to complete")
    for worker in rest:
        worker.stop()

    steps = {s.id: s for s in all_steps(app)}
    assert all(steps[i].attempts >= 2 for i in cut_revokes | cut_purges), "the cut steps were taken over and rerun"
    assert_everything_done_once(app, crowd, request_ids, before, platform_url, mail_sink, [first, second, *rest],
                                kills=2)
    # The network itself says every token is dead.
    for member in crowd:
        assert not introspected_active(demo_network, member.refresh_token)
        assert not introspected_active(demo_network, member.access_token)


def test_a_worker_started_with_no_options_waits_on_many_networks_at_once(app, demo_network, platform_url,
                                                                         start_worker, demo_state):
    # A revocation mostly waits on the network; `flask worker` alone runs THREADS of them at once, no more.
    crowd = make_crowd(app, demo_network.app, platform_url, THREADS + 4)
    submit_all(app, crowd)
    demo_state.faults.set("revoke", delay=3)  # each of a step's two calls: a step is on the wire for 6 s
    start_worker(threads=None)

    def on_the_wire() -> int:
        return sum(s.status == "running" for s in all_steps(app, "revoke"))

    wait_for(lambda: on_the_wire() >= THREADS, 60, f"{THREADS} revocations under way at once")
    seen = [on_the_wire() for _ in range(5)]
    assert max(seen) == THREADS, seen


def crowd_at_a_small_network(app, demo_network, platform_url, config_files, demo_state, max_in_flight: int,
                             people: int, seconds_a_call: float):
    """`people` who left, submitted, with Demo Social's catalogue entry taking `max_in_flight` calls at once and
    answering each revocation in `seconds_a_call`; its record of calls at once counts from none."""
    takes_at_once(config_files["networks"], "[networks.demo.revocation]", max_in_flight)
    crowd = make_crowd(app, demo_network.app, platform_url, people)
    submit_all(app, crowd)
    # Calls of an earlier test's worker, killed, may still be answered (slowly): count from none.
    wait_for(lambda: demo_state.under_way.answering("revoke") == 0, 30, "Demo Social to answer every earlier call")
    demo_state.under_way.reset()
    demo_state.faults.set("revoke", delay=seconds_a_call)
    return crowd


def test_a_network_that_takes_few_calls_at_once_gets_no_more_from_a_worker(app, demo_network, platform_url,
                                                                          config_files, start_worker, demo_state):
    # A small server's catalogue entry says how many revocation calls it takes at once: 16 threads keep to it.
    # 2 s a step (two calls), two steps at a time: the last ones wait 6 s for their turn, beyond the 4 s lease.
    crowd = crowd_at_a_small_network(app, demo_network, platform_url, config_files, demo_state,
                                     max_in_flight=2, people=8, seconds_a_call=1.0)
    start_worker(threads=None, **SHORT_LEASE)

    wait_for(lambda: completed(app) == len(crowd), 120, "every request to complete")
    # Never more than two calls at once. Each waiting step kept its lease and waited its turn: none was taken
    # over by a free thread, or tried twice.
    assert demo_state.under_way.busiest["revoke"] == 2
    assert {s.attempts for s in all_steps(app, "revoke")} == {1}
    tokens = [t for m in crowd for t in (m.refresh_token, m.access_token)]
    assert all(demo_revoked(demo_network.app, tokens).values())


def test_a_network_that_takes_few_calls_at_once_gets_no_more_from_all_the_workers_together(
        app, demo_network, platform_url, config_files, start_worker, demo_state):
    # The catalogue's max_in_flight is the network's, not each worker's: three workers keep to 2 calls together.
    # 1 s a step (two calls): long enough that every worker has calls to make.
    crowd = crowd_at_a_small_network(app, demo_network, platform_url, config_files, demo_state,
                                     max_in_flight=2, people=9, seconds_a_call=0.5)
    workers = [start_worker(threads=4, **SHORT_LEASE) for _ in range(3)]
    revoking: set[int] = set()  # the workers seen with a revocation under way

    def done() -> bool:
        running = [s.lease_owner for s in all_steps(app, "revoke") if s.status == "running"]
        revoking.update(i for i, w in enumerate(workers) for owner in running if w.owns(owner))
        return completed(app) == len(crowd)

    wait_for(done, 120, "every request to complete")
    assert len(revoking) >= 2, "more than one worker revoked"
    assert demo_state.under_way.busiest["revoke"] == 2  # never 3 or more: 6 with a limit per worker process
    assert {s.attempts for s in all_steps(app, "revoke")} == {1}  # a step that waited for a slot spent nothing
    tokens = [t for m in crowd for t in (m.refresh_token, m.access_token)]
    assert all(demo_revoked(demo_network.app, tokens).values())


def test_a_busy_network_holds_up_no_deletion(app, demo_network, platform_url, config_files, start_worker, demo_state):
    # One call at a time, 6 s each: a worker's 4 threads do not all queue behind it, but purge everyone meanwhile.
    crowd_at_a_small_network(app, demo_network, platform_url, config_files, demo_state,
                             max_in_flight=1, people=8, seconds_a_call=3.0)
    start_worker(threads=4)

    def purged() -> bool:
        return {s.status for s in all_steps(app, "purge")} == {"done"}

    wait_for(purged, 30, "every purge to be done")
    assert not any(s.status == "done" for s in all_steps(app, "revoke")), "the purges waited for a revocation"
    assert demo_state.under_way.busiest["revoke"] == 1


@pytest.mark.slow
def test_two_workers_on_one_database_run_each_step_once(app, demo_network, platform_url, start_worker, mail_sink,
                                                        sessions, demo_state):
    crowd = make_crowd(app, demo_network.app, platform_url, 200, first_account=60000)
    before = snapshot(platform_url)
    request_ids = submit_all(app, crowd)
    revocations_before = demo_state.calls["revoke"]

    # A lease far longer than any step: a step run twice here could only be a double claim.
    workers = [start_worker(erasure_lease_seconds=120), start_worker(erasure_lease_seconds=120)]
    owners: set[str] = set()

    def all_completed() -> bool:
        with sessions() as db:
            owners.update(db.scalars(select(ErasureStep.lease_owner).where(ErasureStep.status == "running")))
        return completed(app) == len(crowd)

    wait_for(all_completed, 240, "every request to complete", every=0.02)
    for worker in workers:
        worker.stop()

    # Both workers claimed work, and no step was claimed twice.
    assert all(any(w.owns(o) for o in owners) for w in workers), owners
    steps = all_steps(app)
    assert {s.attempts for s in steps} == {1}
    # The revocation server saw each grant's two tokens once: refresh, then access, 2 calls a grant.
    assert demo_state.calls["revoke"] - revocations_before == 2 * len(crowd)
    tokens = [t for m in crowd for t in (m.refresh_token, m.access_token)]
    assert all(demo_revoked(demo_network.app, tokens).values())
    assert_everything_done_once(app, crowd, request_ids, before, platform_url, mail_sink, workers)


@pytest.mark.slow
def test_a_step_waiting_its_turn_in_one_worker_is_not_run_again_by_another(app, demo_network, platform_url,
                                                                           start_worker, mail_sink, demo_state):
    """Short leases and a slow network: a worker claims only what it can start at once, so no lease
    runs out while a step waits in its queue, and no other worker revokes the same grant again."""
    crowd = make_crowd(app, demo_network.app, platform_url, 16, first_account=70000)
    request_ids = submit_all(app, crowd)
    revocations_before = demo_state.calls["revoke"]
    # 1.2 s a grant: 16 grants are 4.8 s of work for one worker's 4 threads, beyond a 4 s lease (a worker that
    # claimed them all would lose leases), while a step run at once finishes with seconds to spare, even on a
    # busy machine.
    demo_state.faults.set("revoke", delay=0.6)

    workers = [start_worker(**SHORT_LEASE), start_worker(**SHORT_LEASE)]
    wait_for(lambda: completed(app) == len(crowd), 90, "every request to complete")
    for worker in workers:
        worker.stop()

    assert demo_state.calls["revoke"] - revocations_before == 2 * len(crowd)
    assert {s.attempts for s in all_steps(app)} == {1}
    assert {s.request_id for s in all_steps(app)} == set(request_ids)


@pytest.mark.slow
def test_a_worker_its_operator_stops_finishes_what_it_started_and_leaves_nothing_leased(app, demo_network, platform_url,
                                                                                        start_worker, mail_sink,
                                                                                        demo_state):
    crowd = make_crowd(app, demo_network.app, platform_url, 12, first_account=80000)
    submit_all(app, crowd)
    revocations_before = demo_state.calls["revoke"]
    demo_state.faults.set("revoke", delay=0.3)

    first = start_worker()  # the default lease: two minutes
    wait_for(lambda: any(s.status == "done" for s in all_steps(app, "revoke"))
             and any(s.status == "running" for s in all_steps(app, "revoke")), 60, "revocations under way")
    first.stop()  # SIGTERM
    assert first.process.returncode == 0
    assert [s for s in all_steps(app) if s.status == "running"] == [], "a step is left leased to a stopped worker"
    assert "Traceback" not in first.output

    # The next worker need not wait for any lease to run out.
    demo_state.faults.clear("revoke")
    second = start_worker()
    wait_for(lambda: completed(app) == len(crowd), 30, "the next worker to finish every request")
    second.stop()
    assert demo_state.calls["revoke"] - revocations_before == 2 * len(crowd)
    assert {s.attempts for s in all_steps(app)} == {1}
