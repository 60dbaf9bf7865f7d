"""The rest of the exchange: access through a one-time results_url, the person's own proof of control for a
claim the agent did not verify, and status callbacks to the agent's loopback server."""
from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from sqlalchemy import select, update

from app.db import write_lock
from app.extensions import db
from app.models import User
from erasure.agents import wiring
from erasure.agents.models import AgentRequest, StatusCallback
from tests.conftest import csrf_token_from
from tests.erasure.helpers_optout import outbox
from tests.helpers_sqlite import a_writer_commits_after_every_read

OTTO = "otto@elsewhere.example"


def _tick(served) -> int:
    return wiring.tick(served.app, served.app.extensions["ownstory_db"]["sessionmaker"])


def test_access_hands_out_the_export_once_through_results_url(served, agent):
    status = agent.exercise("access", email=OTTO, email_verified=True).json()
    assert status["status"] == "fulfilled", status
    assert status["results_url"].startswith(f"{served.base}/drp/results/{status['request_id']}/")
    assert dt.datetime.fromisoformat(status["expires_at"]) > dt.datetime.now(dt.UTC) + dt.timedelta(days=6)

    download = requests.get(status["results_url"], timeout=30)
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    export = json.loads(download.content)
    assert export["complete"] is True and f"email:{OTTO}" in export["identities"]
    assert any(OTTO in json.dumps(rows) for rows in export["stores"].values())

    again = requests.get(status["results_url"], timeout=10)
    assert again.status_code == 410  # it works once
    assert "results_url" not in agent.status(status["request_id"]).json()
    forged = requests.get(status["results_url"][:-4] + "AAAA", timeout=10)
    assert forged.status_code == 404


def test_access_results_that_are_never_fetched_expire(served, agent):
    status = agent.exercise("access", email=OTTO, email_verified=True).json()
    with served.app.app_context():
        db.session.execute(update(AgentRequest).values(results_expires_at=dt.datetime.now(dt.UTC)))
        db.session.commit()
    assert requests.get(status["results_url"], timeout=10).status_code == 410
    later = agent.status(status["request_id"]).json()
    assert later["status"] == "expired" and "results_url" not in later
    with served.app.app_context():
        assert db.session.get(AgentRequest, status["request_id"]).claims_sealed is None


def _mailed_link(served, request_id: str) -> str:
    mails = [m for m in outbox(served.app) if "Confirm your request" in m["Subject"]]
    assert mails, "no confirmation mail"
    found = re.search(rf"{re.escape(served.base)}/drp/verify/{request_id}/email/\S+", mails[-1].get_content())
    assert found
    return found.group(0)


def test_an_unverified_email_is_confirmed_by_the_person_then_the_deletion_runs(served, agent, drp_worker):
    user_id = served.person("unsure@example.org")
    status = agent.exercise("deletion", email="unsure@example.org", email_verified=False).json()
    assert status["reason"] == "need_user_verification"
    person = requests.Session()
    url = f"{status['user_verification_url']}?request_id={status['request_id']}&redirect_to=https://agent.example/done"
    page = person.get(url, timeout=10)
    assert page.status_code == 200 and "Agent TEST_AGENT" in page.text and "u*****@example.org" in page.text
    assert "unsure@example.org" not in page.text
    with served.app.app_context():
        assert db.session.get(User, user_id).closed_at is None  # reading the page changed nothing
    sent = person.post(status["user_verification_url"], data={"csrf_token": csrf_token_from(page.text)}, timeout=10)
    assert sent.status_code == 200 and "Check your mail" in sent.text

    link = _mailed_link(served, status["request_id"])
    confirm = person.get(link, timeout=10)
    assert confirm.status_code == 200 and agent.status(status["request_id"]).json()["status"] == "in_progress"
    done = person.post(link, data={"csrf_token": csrf_token_from(confirm.text)}, timeout=30)
    assert done.status_code == 200 and 'href="https://agent.example/done"' in done.text
    assert person.post(link, data={"csrf_token": csrf_token_from(confirm.text)}, timeout=10).status_code == 404

    going = agent.status(status["request_id"]).json()
    assert going["status"] == "in_progress" and "reason" not in going and "confirmed" in going["processing_details"]
    with served.app.app_context():
        assert db.session.get(User, user_id).closed_at is not None
    drp_worker.drain()
    assert agent.status(status["request_id"]).json()["status"] == "fulfilled"


def test_the_verification_page_refuses_another_requests_id_and_finished_requests(served, agent):
    status = agent.exercise("deletion", email="unsure@example.org").json()
    wrong = requests.get(f"{status['user_verification_url']}?request_id=0000", timeout=10)
    assert wrong.status_code == 400
    agent.revoke(status["request_id"])
    assert requests.get(status["user_verification_url"], timeout=10).status_code == 404


def test_a_request_nobody_confirms_in_time_is_denied_insuf_verification(served, agent):
    status = agent.exercise("sale:opt-out", email="unsure@example.org").json()
    with served.app.app_context():
        db.session.execute(update(AgentRequest).values(verify_until=dt.datetime.now(dt.UTC)))
        db.session.commit()
    _tick(served)
    later = agent.status(status["request_id"]).json()
    assert (later["status"], later["reason"]) == ("denied", "insuf_verification")


@contextmanager
def _long_write(served) -> Iterator[None]:
    """Another session's write under way, as a purge batch's: on SQLite it holds the write lock until the end."""
    sessions = served.app.extensions["ownstory_db"]["sessionmaker"]
    with sessions() as elsewhere:
        write_lock(elsewhere)
        elsewhere.execute(update(User).values(session_version=User.session_version))
        try:
            yield
        finally:
            elsewhere.rollback()


def test_a_status_poll_answers_while_a_long_write_holds_the_database(served, agent):
    waiting = agent.exercise("deletion", email="unsure@example.org").json()
    revoked = agent.exercise("access", email="other@example.org").json()
    agent.revoke(revoked["request_id"])
    with _long_write(served):
        started = time.monotonic()
        polled = [agent.status(r["request_id"]) for r in (waiting, revoked)]
        took = time.monotonic() - started
    # a poll whose status is up to date only reads: it waits for no writer
    assert [(p.status_code, p.json()["status"]) for p in polled] == [(200, "in_progress"), (200, "revoked")]
    assert took < 5, took


def test_the_verification_page_opens_while_a_long_write_holds_the_database(served, agent):
    status = agent.exercise("deletion", email="unsure@example.org").json()
    with _long_write(served):
        started = time.monotonic()
        page = requests.get(status["user_verification_url"], timeout=30)
        took = time.monotonic() - started
    # a page that only shows a request whose status is up to date waits for no writer
    assert page.status_code == 200 and "u*****@example.org" in page.text
    assert took < 5, took


def test_a_verification_page_opened_too_late_says_so_and_the_request_stays_denied(served, agent):
    status = agent.exercise("deletion", email="unsure@example.org").json()
    with served.app.app_context():
        db.session.execute(update(AgentRequest).values(verify_until=dt.datetime.now(dt.UTC)))
        db.session.commit()
    # Opened before any tick: the page finds the request out of time, records it, and has nothing to confirm.
    assert requests.get(status["user_verification_url"], timeout=10).status_code == 404
    with served.app.app_context():
        stored = db.session.get(AgentRequest, status["request_id"])
        assert (stored.status, stored.reason) == ("denied", "insuf_verification")


def test_every_status_change_reaches_the_callback_retried_until_the_agent_answers(serve, receiver):
    served = serve({"DRP_CALLBACK_RETRY_SECONDS": 0.05})
    agent = served.register()
    agent.setup()
    from erasure.engine.worker import Worker

    worker = Worker(served.app, threads=2)
    try:
        receiver.fail_next = 2  # the agent is briefly down
        status = agent.exercise("deletion", email=OTTO, email_verified=True, status_callback=receiver.url).json()
        assert receiver.received == []  # the answer did not wait for the callback
        _tick(served)
        assert receiver.received == []
        time.sleep(0.1)
        _tick(served)
        time.sleep(0.2)
        _tick(served)
        assert [b["status"] for b in receiver.received] == ["in_progress"]
        worker.drain()
        _tick(served)
    finally:
        worker.close()
    assert [b["status"] for b in receiver.received] == ["in_progress", "fulfilled"]
    assert receiver.received[-1] == agent.status(status["request_id"]).json()
    with served.app.app_context():
        rows = list(db.session.scalars(select(StatusCallback).order_by(StatusCallback.id)))
    assert [(r.state, r.attempts) for r in rows] == [("sent", 3), ("sent", 1)]


def test_a_callback_sent_is_recorded_though_another_process_commits_meanwhile(served, agent, receiver):
    """The scheduler reads the callback again to record that it was sent: a worker's commit in between must not
    fail it ("database is locked" on SQLite), or the agent is sent the same status again after the lease."""
    agent.exercise("access", email="unsure@example.org", status_callback=receiver.url)
    with a_writer_commits_after_every_read(served.app) as interposed:
        assert _tick(served) == 1
    assert interposed
    assert [b["status"] for b in receiver.received] == ["in_progress"]
    with served.app.app_context():
        assert [(r.state, r.attempts) for r in db.session.scalars(select(StatusCallback))] == [("sent", 1)]


def test_a_revoke_is_called_back_too(served, agent, receiver):
    status = agent.exercise("access", email="unsure@example.org", status_callback=receiver.url).json()
    agent.revoke(status["request_id"], "not now")
    _tick(served)
    assert [(b["status"], b.get("reason")) for b in receiver.received] == [
        ("in_progress", "need_user_verification"), ("revoked", None)]


def test_an_access_callback_carries_the_results_url_though_no_stored_row_holds_it(served, agent, receiver):
    status = agent.exercise("access", email=OTTO, email_verified=True, status_callback=receiver.url).json()
    with served.app.app_context():
        stored = [r.body for r in db.session.scalars(select(StatusCallback))]
    assert stored and all("results_url" not in body for body in stored)
    _tick(served)
    assert [b["status"] for b in receiver.received] == ["fulfilled"]
    assert receiver.received[0]["results_url"] == status["results_url"]
