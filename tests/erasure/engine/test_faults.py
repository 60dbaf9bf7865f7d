"""Faults during an opt-out: a network that misbehaves, a platform store that goes away or fails part-way,
and proof that only the leaving person's data goes. Nothing is lost, nothing is reported done before it is."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import sqlite3
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, text

from app.db import utcnow
from app.models import User
from app.text import date_text
from consent.models import Grant
from erasure.context import context_from_app
from erasure.engine.revocation import TIMEOUT
from erasure.engine.worker import QUICK_RETRIES, Worker
from erasure.models import ErasureStep, OptOutRequest
from erasure.optout import progress, wording
from erasure.optout.wording import REQUEST_STATES
from tests.conftest import db_session
from tests.consent.helpers_connect import connect_through_demo
from tests.erasure.engine.helpers_processes import (
    column_names,
    held_rows,
    make_crowd,
    naming,
    snapshot,
    submit_all,
    without,
)
from tests.erasure.helpers_optout import (
    demo_token_active,
    joined_person,
    outbox,
    purged_rows,
    sealed_tokens,
    submit_optout,
)

QUICK_TIMEOUT = (2, 0.3)  # connect, read: what the worker allows a network while it is made slow
SLOW = 1.0  # a network that takes longer than that to answer
RETRY_AFTER = 30  # seconds a busy network asks us to wait
OURS = {"app", "consent", "erasure", "urllib3", "requests"}  # the loggers of Ownstory and its HTTP client

NETWORK_FAULTS = {
    "busy": "HTTP 503 from Demo Social",  # with Retry-After
    "error": "HTTP 500 from Demo Social",
    "timeout": "timed out waiting for Demo Social",
    "refused": "connection refused by Demo Social",
}


@dataclass(frozen=True)
class Someone:
    """The platform-side identities of a person, for counting their rows."""

    account: str
    handle: str
    email: str


@pytest.fixture
def platform_url(tmp_path, platform_template) -> str:
    """The platform store in a folder of its own, so a test can take the folder away as an outage."""
    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copyfile(platform_template, folder / "platform.db")
    return f"sqlite:///{folder}/platform.db"


@pytest.fixture
def worker(app):
    # Not tests/erasure/conftest.py's worker: this one claims a whole round at once, so that a test can
    # drive it round by round and see every retry.
    w = Worker(app, threads=2, batch=16)  # alone, and driven a round at a time: each round takes all that is due
    yield w
    w.close()


# --- reading what a person and an operator would see ---------------------------------------------

def steps_of(app, request_id: str) -> list[ErasureStep]:
    with db_session(app) as db:
        return list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                               .order_by(ErasureStep.position)))


def step(app, request_id: str, kind: str, target: str | None = None) -> ErasureStep:
    """The step of this kind and target."""
    found = [s for s in steps_of(app, request_id) if s.kind == kind and (target is None or s.target == target)]
    assert len(found) == 1, found
    return found[0]


def counted_at_start(purge: ErasureStep) -> dict[str, int]:
    """The rows a store's purge step found, by category, recorded before it purged any."""
    return {part["category"]: part["rows_at_start"] for part in purge.result.get("categories", [])}


def request_status(app, request_id: str) -> str:
    with db_session(app) as db:
        return db.get(OptOutRequest, request_id).status


def request_id_of(status_path: str) -> str:
    return urlsplit(status_path).path.rsplit("/", 1)[1]


def due(steps: list[ErasureStep]) -> dt.datetime:
    """The moment the next retry is due: the worker is run at that time, not made to wait for it."""
    return max([utcnow(), *(s.not_before for s in steps if s.status in ("retrying", "needs_attention"))])


def operator_view(app, api_token, request_id: str) -> dict:
    answer = app.test_client().get(f"/api/v1/optouts/{request_id}",
                                   headers={"Authorization": f"Bearer {api_token('operator')}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.json


# --- a network misbehaves ------------------------------------------------------------------------

def break_network(demo_network, demo_state, worker: Worker, fault: str) -> None:
    faults = demo_state.faults
    if fault == "busy":
        faults.set("revoke", status=503, retry_after=RETRY_AFTER)
    elif fault == "error":
        faults.set("revoke", status=500)
    elif fault == "timeout":
        # Only while the network is slow does the worker wait so little: a healthy answer on a busy
        # machine can take longer than 0.3 s, and must not be mistaken for the fault.
        worker.http_timeout = QUICK_TIMEOUT
        faults.set("revoke", delay=SLOW)  # it answers in the end, after we have stopped waiting
    else:
        demo_network.stop()


def mend_network(demo_network, demo_state, worker: Worker) -> None:
    demo_state.faults.clear("revoke")
    worker.http_timeout = TIMEOUT
    demo_network.start()  # a no-op when it is running


@pytest.mark.parametrize("fault", list(NETWORK_FAULTS))
def test_a_misbehaving_network_is_retried_shown_honestly_and_finished_when_it_recovers(
        fault, app, client, make_person, login, csrf_post, api_token, worker, demo_network, caplog, demo_state):
    caplog.set_level(logging.DEBUG)
    joined_person(client, make_person, login, csrf_post, account="1001")
    access, refresh = sealed_tokens(app, "1001")
    status_path = submit_optout(client, csrf_post, "all")
    request_id = request_id_of(status_path)
    calls_before = demo_state.calls["revoke"]
    break_network(demo_network, demo_state, worker, fault)

    purged_at_once = [s.id for s in steps_of(app, request_id) if s.kind == "purge"]
    for attempt in range(1, QUICK_RETRIES + 2):  # the quick retries, and one more after them
        started = utcnow()
        ran = worker.run_once(now=due(steps_of(app, request_id)))
        # The stores are purged in the first round, alongside the revocation: the network holds back no deletion.
        assert ran == (1 + len(purged_at_once) if attempt == 1 else 1), "then only the revocation may run"
        revoke = step(app, request_id, "revoke")
        assert revoke.attempts == attempt
        assert revoke.status == ("retrying" if attempt < QUICK_RETRIES else "needs_attention")
        assert revoke.last_error.startswith(NETWORK_FAULTS[fault])
        assert access not in revoke.last_error and refresh not in revoke.last_error
        # Never done without the network's confirmation, and nothing that waits for it has started.
        assert revoke.done_at is None and "outcome" not in revoke.result
        assert {s.status for s in steps_of(app, request_id) if s.id in purged_at_once} == {"done"}
        assert {s.status for s in steps_of(app, request_id)
                if s.kind != "revoke" and s.id not in purged_at_once} == {"pending"}
        assert request_status(app, request_id) == ("in_progress" if attempt < QUICK_RETRIES else "needs_attention")
        # The network really was asked each time (unless it refused the connection).
        assert demo_state.calls["revoke"] - calls_before == (0 if fault == "refused" else attempt)
        if fault == "busy":
            assert revoke.not_before >= started + dt.timedelta(seconds=RETRY_AFTER)
            assert worker.run_once() == 0, "Retry-After is honoured: nothing is due before then"
        if fault in ("busy", "error"):
            assert demo_token_active(demo_network, refresh) and demo_token_active(demo_network, access)

    if fault == "timeout":
        # The network acted on our calls after we had given up waiting. It never said so to us,
        # so the step stays open: only a confirmation counts.
        demo_state.faults.clear("revoke")
        assert not demo_token_active(demo_network, refresh)
        assert step(app, request_id, "revoke").status == "needs_attention"

    # What the person sees: honest about the delay, in words, no claim that the revocation is done.
    page = app.test_client().get(status_path).get_data(as_text=True)
    assert REQUEST_STATES["needs_attention"] in page
    with db_session(app) as db:
        deadline = date_text(db.get(OptOutRequest, request_id).deadline)
    assert f"Demo Social is not answering; we keep trying and will finish by {deadline}." in page
    assert escape(step(app, request_id, "revoke").last_error) not in page, "the network's answer is for operators"
    assert "Revoked, confirmed" not in page and "Done." not in page
    # What an operator sees.
    view = operator_view(app, api_token, request_id)
    assert view["status"] == "needs_attention"
    shown = next(s for s in view["steps"] if s["kind"] == "revoke")
    assert (shown["status"], shown["attempts"], shown["done_at"]) == ("needs_attention", QUICK_RETRIES + 1, None)
    assert shown["last_error"].startswith(NETWORK_FAULTS[fault])
    for secret in (access, refresh):
        assert secret not in page and secret not in str(view)

    # The network recovers: the step, still retrying on its own, goes through with no one's help.
    mend_network(demo_network, demo_state, worker)
    assert worker.run_once(now=due(steps_of(app, request_id))) == 1
    revoke = step(app, request_id, "revoke")
    assert (revoke.status, revoke.result["outcome"], revoke.last_error) == ("done", "revoked", None)
    assert not demo_token_active(demo_network, refresh) and not demo_token_active(demo_network, access)
    worker.drain()
    assert request_status(app, request_id) == "completed"
    page = app.test_client().get(status_path).get_data(as_text=True)
    assert "Done." in page and "Revoked, confirmed by the network" in page
    # Ownstory's own log lines, and its HTTP client's, never carry a token (Demo Social's own
    # debug lines, the network's side, are not ours to judge).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in OURS)
    assert "revoke demo" in logged
    assert access not in logged and refresh not in logged


# --- a platform store is unreachable --------------------------------------------------------------

def test_an_unreachable_store_is_retried_and_nothing_partial_is_reported_done(
        app, client, make_person, login, csrf_post, api_token, worker, platform_url, tmp_path):
    person = joined_person(client, make_person, login, csrf_post, account="1002")
    held = held_rows(platform_url, Someone("1002", "omar", person.email))
    status_path = submit_optout(client, csrf_post, "all")
    request_id = request_id_of(status_path)
    store, away = tmp_path / "store", tmp_path / "store-away"

    def outage() -> None:
        store.rename(away)
        app.extensions["datamap"].dispose()  # the connections an outage breaks

    def purges() -> list[ErasureStep]:
        return [step(app, request_id, "purge", "platform")]  # one step purges every entry of the store

    outage()  # before the first round: the purge runs alongside the revocation, which needs no store
    for attempt in range(1, QUICK_RETRIES + 1):
        worker.run_once(now=due(purges()))
        assert step(app, request_id, "revoke").status == "done"
        (s,) = purges()
        assert s.attempts == attempt and s.done_at is None and "rows" not in s.result
        assert s.status == ("retrying" if attempt < QUICK_RETRIES else "needs_attention")
        assert s.last_error == "store 'platform': cannot reach or use the store (OperationalError SQLITE_CANTOPEN)"
        later = [s for s in steps_of(app, request_id) if s.phase > purges()[0].phase]
        assert {s.status for s in later} == {"pending"}, "nothing after the purge may run, verify least of all"
    assert request_status(app, request_id) == "needs_attention"
    page = app.test_client().get(status_path).get_data(as_text=True)
    assert "Not done yet: store &#39;platform&#39;: cannot reach or use the store" in page
    assert "Nothing is left." not in page and "Done." not in page
    assert str(tmp_path) not in page and str(tmp_path) not in str(operator_view(app, api_token, request_id))

    # The store is back: the purge finishes (access is revoked already), then forget, then the store goes
    # away again just before verify.
    away.rename(store)
    assert worker.run_once(now=due(purges())) == 1
    assert worker.run_once() == 1 and step(app, request_id, "forget", "ownstory").status == "done"
    outage()
    for _ in range(3):
        assert worker.run_once(now=due(steps_of(app, request_id))) == 1
        verify = step(app, request_id, "verify")
        assert verify.status in ("retrying", "needs_attention") and verify.done_at is None, \
            "a store that cannot be read is not a store with nothing left"
        assert verify.last_error.startswith("store 'platform': cannot reach or use the store")
        assert request_status(app, request_id) != "completed"
        assert [m["Subject"] for m in outbox(app) if "complete" in m["Subject"]] == [], "no one is told it is done"

    away.rename(store)
    worker.run_once(now=due(steps_of(app, request_id)))
    worker.drain()
    assert request_status(app, request_id) == "completed"
    assert purged_rows(purges()) == held
    assert step(app, request_id, "verify").result["late_rows"] == []  # nothing twice
    assert naming(platform_url, {"1002", "omar"}) == []


def test_a_store_failing_part_way_through_a_purge_keeps_the_step_open_and_counts_each_row_once(
        app, client, make_person, login, csrf_post, worker, platform_url):
    joined_person(client, make_person, login, csrf_post, account="1003")
    path = platform_url.removeprefix("sqlite:///")
    store = sqlite3.connect(path, isolation_level=None)
    store.execute("PRAGMA journal_mode=WAL")  # as the workers' engines will have it
    store.execute("BEGIN")
    store.executemany("INSERT INTO posts (author_id, body, created_at) VALUES ('1003', ?, '2026-03-01 00:00:00')",
                      [(f"extra {n}",) for n in range(2480)])
    store.execute("COMMIT")
    held = store.execute("SELECT count(*) FROM posts WHERE author_id = '1003'").fetchone()[0]
    assert held == 2500  # more than one batch of 1,000
    # The store fails once the first batch is in: every later delete of these posts errors out.
    store.executescript("""
        CREATE TABLE budget (rows INTEGER NOT NULL);
        INSERT INTO budget VALUES (1000);
        CREATE TRIGGER failing BEFORE DELETE ON posts WHEN (SELECT rows FROM budget) <= 0
            BEGIN SELECT RAISE(ABORT, 'the disk is failing'); END;
        CREATE TRIGGER spending AFTER DELETE ON posts BEGIN UPDATE budget SET rows = rows - 1; END;
    """)
    status_path = submit_optout(client, csrf_post, "all")
    request_id = request_id_of(status_path)

    for attempt in (1, 2):  # the first round revokes too
        worker.run_once(now=due(steps_of(app, request_id)))
        purge = step(app, request_id, "purge", "platform")
        assert purge.attempts == attempt and purge.status != "done" and purge.done_at is None
        assert purge.last_error.startswith("store 'platform'")
        assert counted_at_start(purge)["posts"] == held and "rows" not in purge.result
        assert store.execute("SELECT count(*) FROM posts WHERE author_id = '1003'").fetchone()[0] == 1500
        assert step(app, request_id, "verify").status == "pending"
        assert request_status(app, request_id) == "needs_attention"
    page = app.test_client().get(status_path).get_data(as_text=True)
    assert "2500 posts" not in page and "1000 posts" not in page

    store.executescript("DROP TRIGGER failing; DROP TRIGGER spending; DROP TABLE budget;")
    store.close()
    worker.run_once(now=due(steps_of(app, request_id)))
    purge = step(app, request_id, "purge", "platform")
    assert purge.status == "done" and purged_rows([purge])["posts"] == held, \
        "1,000 rows in the first try, 1,500 in the last"
    worker.drain()
    assert request_status(app, request_id) == "completed"
    assert "2500 posts" in app.test_client().get(status_path).get_data(as_text=True)


# --- only the person's data goes -----------------------------------------------------------------

NEIGHBOURS = [  # people whose ids and addresses look like the leavers', and who stay
    ("profiles", {"account_id": "10020", "handle": "omar_", "display_name": "Not Omar", "bio": ""}),
    ("profiles", {"account_id": "21002", "handle": "omarh", "display_name": "Not Omar either", "bio": ""}),
    ("posts", {"author_id": "10020", "body": "not by omar", "created_at": "2026-03-01 00:00:00"}),
    ("posts", {"author_id": "100", "body": "not by omar either", "created_at": "2026-03-01 00:00:00"}),
    ("endorsements", {"giver_id": "10020", "receiver_id": "21002", "topic": "music"}),
    ("endorsements", {"giver_id": "1001", "receiver_id": "10030", "topic": "music"}),
    ("scores", {"handle": "omar_", "score": 12.5, "computed_at": "2026-03-01 00:00:00"}),
    ("scores", {"handle": "mei2", "score": 13.5, "computed_at": "2026-03-01 00:00:00"}),
    ("mailing_list", {"email": "omar@demo.example.org", "subscribed_at": "2026-03-01 00:00:00"}),
    ("mailing_list", {"email": "xomar@demo.example", "subscribed_at": "2026-03-01 00:00:00"}),
]


def test_only_the_leavers_data_goes_and_every_other_row_is_unchanged(app, make_person, login, csrf_post, api_token,
                                                                     worker, platform_url, sessions):
    engine = app.extensions["datamap"].store("platform").engine
    with engine.begin() as conn:
        for table, row in NEIGHBOURS:
            conn.execute(text(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"),
                         row)
    columns = column_names(platform_url)

    def join(email: str, account: str):
        client = app.test_client()
        person = make_person(email=email)
        login(client, person)
        assert connect_through_demo(client, csrf_post, account).status_code in (302, 303)
        assert csrf_post(client, "/consents", {"consent:demo:scoring": "on"}).status_code in (302, 303)
        return client, person

    omar_client, omar = join("omar@demo.example", "1002")  # leaves everything
    mei_client, mei = join("mei@demo.example", "1003")  # leaves Demo Social only
    _liz_client, liz = join("liz@demo.example", "1001")  # stays

    def leave(client, scope: str, identity: Someone) -> tuple[dict, dict[str, int], str]:
        before = snapshot(platform_url)
        held = held_rows(platform_url, identity)
        request_id = request_id_of(submit_optout(client, csrf_post, scope))
        worker.drain()
        assert request_status(app, request_id) == "completed"
        counted = purged_rows(steps_of(app, request_id))
        return before, held, counted

    before, held, counted = leave(omar_client, "all", Someone("1002", "omar", "omar@demo.example"))
    assert counted == held and held["posts"] == 20 and held["mailing list"] == 1
    after_omar = snapshot(platform_url)
    assert after_omar == without(before, {"1002"}, {"omar"}, {"omar@demo.example"}, columns)
    # Endorsements others gave him stay theirs, with his name taken out.
    assert sum(1 for r in after_omar["endorsements"] if r[columns["endorsements"].index("receiver_id")] is None) \
        == held["endorsements received"] > 0

    # Leaving one network takes that network's data only: her mailing-list entry is not Demo Social's.
    before, held, counted = leave(mei_client, "demo", Someone("1003", "mei", "mei@demo.example"))
    del held["mailing list"]
    assert counted == held
    assert snapshot(platform_url) == without(before, {"1003"}, {"mei"}, set(), columns)
    assert naming(platform_url, {"1002", "omar", "omar@demo.example", "1003", "mei"}) == []
    assert naming(platform_url, {"mei@demo.example"}) != []

    # Liz stayed: her rows, her grant and her consent are as they were.
    assert held_rows(platform_url, Someone("1001", "liz", "liz@demo.example"))["posts"] == 20
    answer = app.test_client().post(
        "/api/v1/consent/check", headers={"Authorization": f"Bearer {api_token('service')}"},
        json={"checks": [{"network": "demo", "account": "1001", "purpose": "scoring"},
                         {"network": "demo", "account": "1002", "purpose": "scoring"},
                         {"network": "demo", "account": "1003", "purpose": "scoring"}]})
    assert [r["reason"] for r in answer.json["results"]] == ["granted", "opted_out", "withdrawn"]
    with sessions() as db:
        assert db.get(User, omar.id) is None
        assert db.get(User, mei.id) is not None and db.get(User, liz.id) is not None
        assert [g.account_id for g in db.scalars(select(Grant))] == ["1001"]


def _run_after(worker: Worker, held_until: dt.datetime) -> None:
    """Run what is due by a clock past the network's wait, until nothing is."""
    later = held_until + dt.timedelta(minutes=5)
    for _ in range(20):
        if not worker.run_once(now=later):
            break


def test_a_network_that_asks_to_wait_is_asked_nothing_more_by_anyone_until_then(app, demo_network, platform_url,
                                                                                demo_state):
    # A crowd leaves, and the network rate-limits: 429 with Retry-After. What it asks of one call it asks of all.
    crowd = make_crowd(app, demo_network.app, platform_url, 6)
    request_ids = submit_all(app, crowd)
    calls_before = demo_state.calls["revoke"]
    demo_state.faults.set("revoke", status=429, retry_after=RETRY_AFTER)
    worker = Worker(app, threads=2)
    try:
        started = utcnow()
        worker.drain()
        held_until = started + dt.timedelta(seconds=RETRY_AFTER)
        revokes = [step(app, r, "revoke") for r in request_ids]
        tried = [s for s in revokes if s.attempts]
        # Only the calls already under way when it first said so were made: one each, the refresh token's.
        assert 1 <= len(tried) <= 2 and demo_state.calls["revoke"] - calls_before == len(tried)
        assert all(s.status == "pending" and s.not_before >= held_until for s in revokes if not s.attempts)
        # The network holds back no deletion; what waits for the revocations waits as long, out of the claims' way.
        everything = [s for r in request_ids for s in steps_of(app, r)]
        assert {s.status for s in everything if s.kind == "purge"} == {"done"}
        assert all(s.status == "pending" and s.not_before >= held_until
                   for s in everything if s.kind not in ("revoke", "purge"))
        assert worker.run_once(now=held_until - dt.timedelta(seconds=1)) == 0
        # The status page of someone whose revocation waits says so, in words.
        waiting = next(s for s in revokes if not s.attempts)
        ctx = context_from_app(app)
        with db_session(app) as db:
            shown = progress.groups(db.get(OptOutRequest, waiting.request_id).steps, ctx.networks,
                                    wording.store_kinds(ctx.datamap), utcnow())
        revocation = next(g for g in shown if g.key == f"revoke-{waiting.target}")
        assert revocation.outcome.startswith("Demo Social asked us to wait a little; we try again in about 1 minute"), \
            revocation.outcome

        # Once the wait is over, and the network answers again, every revocation goes through.
        demo_state.faults.clear("revoke")
        _run_after(worker, held_until)
    finally:
        worker.close()
    assert {step(app, r, "revoke").status for r in request_ids} == {"done"}
    assert demo_state.calls["revoke"] - calls_before == len(tried) + 2 * len(crowd)  # refresh and access each
    for member in crowd:
        assert not demo_token_active(demo_network, member.refresh_token)



def test_someone_who_leaves_while_a_network_is_held_waits_with_the_others_untried(app, demo_network, platform_url,
                                                                                  demo_state):
    crowd = make_crowd(app, demo_network.app, platform_url, 2)
    first = submit_all(app, crowd)
    demo_state.faults.set("revoke", status=429, retry_after=RETRY_AFTER)
    worker = Worker(app, threads=2)
    try:
        started = utcnow()
        worker.drain()  # the network says "wait" to the calls under way
        held_until = started + dt.timedelta(seconds=RETRY_AFTER)
        assert all(step(app, r, "revoke").not_before >= held_until for r in first)

        # Someone leaves meanwhile: their revocation is due at once, but this worker asks the network nothing.
        late = make_crowd(app, demo_network.app, platform_url, 1, first_account=51000)
        [late_id] = submit_all(app, late)
        calls = demo_state.calls["revoke"]
        worker.drain()
        assert demo_state.calls["revoke"] == calls
        waiting = step(app, late_id, "revoke")
        assert (waiting.status, waiting.attempts) == ("pending", 0) and waiting.not_before >= held_until
        assert all(s.status == "pending" and s.not_before >= held_until
                   for s in steps_of(app, late_id) if s.kind not in ("revoke", "purge"))

        demo_state.faults.clear("revoke")
        _run_after(worker, held_until)
    finally:
        worker.close()
    assert step(app, late_id, "revoke").status == "done" and step(app, late_id, "revoke").attempts == 1
    assert not demo_token_active(demo_network, late[0].refresh_token)


def test_a_worker_that_was_not_told_to_wait_learns_of_it_from_the_one_that_was(app, demo_network, platform_url,
                                                                               demo_state):
    crowd = make_crowd(app, demo_network.app, platform_url, 2)
    submit_all(app, crowd)
    demo_state.faults.set("revoke", status=429, retry_after=RETRY_AFTER)
    told, other = Worker(app, threads=2), Worker(app, threads=2)
    try:
        started = utcnow()
        told.drain()  # the network says "wait" to this worker's calls
        held_until = started + dt.timedelta(seconds=RETRY_AFTER)

        # Someone leaves meanwhile, and the other worker, which never called the network, is the one that drains.
        late = make_crowd(app, demo_network.app, platform_url, 1, first_account=52000)
        [late_id] = submit_all(app, late)
        calls = demo_state.calls["revoke"]
        other.drain()
        assert demo_state.calls["revoke"] == calls  # it asked the network nothing
        waiting = step(app, late_id, "revoke")
        assert (waiting.status, waiting.attempts) == ("pending", 0) and waiting.not_before >= held_until

        demo_state.faults.clear("revoke")
        _run_after(other, held_until)
    finally:
        told.close()
        other.close()
    assert step(app, late_id, "revoke").status == "done" and step(app, late_id, "revoke").attempts == 1
