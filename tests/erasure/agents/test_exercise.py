"""Exercising rights through an agent: deletion, sale:opt-out and sale:opt-in, the status, and the revoke."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.models import User
from consent import ledger
from consent.models import ConsentState, Grant
from erasure.models import OptOutRequest, Receipt
from erasure.receipts.issue import claims_of

OTTO = "otto@elsewhere.example"  # on the platform's mailing list, with no Ownstory account


def test_a_deletion_runs_the_opt_out_and_is_fulfilled_with_the_receipt(served, agent, drp_worker):
    answer = agent.exercise("deletion", email=OTTO, email_verified=True, **{"agent-request-id": "abc-1"})
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["status"] == "in_progress" and "reason" not in status
    assert status["agent_request_id"] == "abc-1"
    received = dt.datetime.fromisoformat(status["received_at"])
    expected_by = dt.datetime.fromisoformat(status["expected_by"])
    assert dt.timedelta(days=29) < expected_by - received <= dt.timedelta(days=30)  # the opt-out's deadline

    drp_worker.drain()
    done = agent.status(status["request_id"]).json()
    assert done["status"] == "fulfilled"
    with served.app.app_context():
        optout = db.session.scalar(select(OptOutRequest).where(OptOutRequest.source == "agent"))
        receipt = db.session.get(Receipt, optout.receipt_id)
        claims = claims_of(receipt)
        assert optout.deadline.isoformat().startswith(done["expected_by"][:19])
    assert done["results_url"] == f"{served.base}/receipts/{receipt.id}"
    assert any(p["category"] == "mailing list" and p["rows"] >= 1 for p in claims["purged"])
    page = agent.http.get(done["results_url"], timeout=10)
    assert page.status_code == 200 and "TEST_AGENT" in page.text and "authorized agent" in page.text


def test_a_deletion_for_a_member_closes_their_account(served, agent, drp_worker):
    user_id = served.person("liz@example.org")
    answer = agent.exercise("deletion", email="Liz@Example.org", email_verified=True)
    assert answer.json()["status"] == "in_progress"
    with served.app.app_context():
        assert db.session.get(User, user_id).closed_at is not None


def _sharing_member(served, granted: bool = True) -> str:
    user_id = served.person("sharer@example.org")
    with served.app.app_context(), db.writing():
        db.session.add(Grant(user_id=user_id, network="demo", account_id="4242", handle="sharer"))
        if granted:
            for purpose in ("partner_sharing", "scoring"):
                version = served.app.extensions["purposes"][purpose].version
                ledger.append(db.session, user_id, "demo", purpose, version, "grant", "form", utcnow())
    return user_id


def _consents(served, user_id: str) -> dict[str, str]:
    with served.app.app_context():
        return {s.purpose: s.status for s in db.session.scalars(
            select(ConsentState).where(ConsentState.subject_id == user_id))}


def test_sale_opt_out_withdraws_the_sale_purposes_only_and_opt_in_gives_them_again(served, agent):
    user_id = _sharing_member(served)
    out = agent.exercise("sale:opt-out", email="sharer@example.org", email_verified=True)
    assert out.json()["status"] == "fulfilled", out.text
    assert _consents(served, user_id) == {"partner_sharing": "withdrawn", "scoring": "granted"}
    back = agent.exercise("sale:opt-in", network_accounts=[{"network": "demo", "account_id": "4242", "verified": True}])
    assert back.json()["status"] == "fulfilled", back.text
    assert _consents(served, user_id) == {"partner_sharing": "granted", "scoring": "granted"}
    assert served.cli("consent", "verify-ledger").exit_code == 0


def test_sale_opt_out_for_nobody_known_is_denied_no_match(agent):
    answer = agent.exercise("sale:opt-out", email="nobody@example.org", email_verified=True)
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["reason"]) == ("denied", "no_match")


def test_a_request_with_no_identity_to_match_is_denied_no_match(agent):
    answer = agent.exercise("deletion", phone_number="+14155550100", phone_number_verified=True)
    assert (answer.json()["status"], answer.json()["reason"]) == ("denied", "no_match")


def test_an_unverified_email_never_deletes_anything_and_waits_for_the_person(served, agent):
    user_id = served.person("unsure@example.org")
    answer = agent.exercise("deletion", email="unsure@example.org", email_verified=False)
    status = answer.json()
    assert (status["status"], status["reason"]) == ("in_progress", "need_user_verification")
    assert status["user_verification_url"] == f"{served.base}/drp/verify/{status['request_id']}"
    assert "expires_at" in status
    with served.app.app_context():
        assert db.session.get(User, user_id).closed_at is None
        assert db.session.scalar(select(OptOutRequest)) is None


def test_unverified_network_accounts_alone_wait_for_the_person_to_sign_in(served, agent):
    answer = agent.exercise("deletion", network_accounts=[{"network": "demo", "account_id": "1", "verified": False}])
    status = answer.json()
    assert (status["status"], status["reason"]) == ("in_progress", "need_user_verification")
    assert status["user_verification_url"] == f"{served.base}/drp/verify/{status['request_id']}"
    with served.app.app_context():
        assert db.session.scalar(select(OptOutRequest)) is None


def test_a_revoke_before_anything_ran_is_revoked_and_after_the_deletion_started_is_refused(served, agent):
    waiting = agent.exercise("deletion", email="unsure@example.org").json()
    revoked = agent.revoke(waiting["request_id"])
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked" and "changed my mind" in revoked.json()["processing_details"]
    assert agent.status(waiting["request_id"]).json()["status"] == "revoked"
    assert agent.revoke(waiting["request_id"]).json()["status"] == "revoked"  # again: the same answer

    started = agent.exercise("deletion", email=OTTO, email_verified=True).json()
    refused = agent.revoke(started["request_id"])
    assert refused.status_code == 409
    assert refused.json()["code"] == "409" and "cannot be undone" in refused.json()["message"]
    assert agent.status(started["request_id"]).json()["status"] == "in_progress"


def test_status_and_revoke_of_another_agents_request_are_403(served, agent):
    mine = agent.exercise("deletion", email="unsure@example.org").json()
    other = served.register("OTHER")
    other.setup()
    assert other.status(mine["request_id"]).status_code == 403
    assert other.revoke(mine["request_id"]).status_code == 403
    assert agent.status(mine["request_id"]).json()["status"] == "in_progress"
    assert agent.status("5b0e2d6a-0000-4000-8000-000000000000").status_code == 404
    assert agent.status("not-a-uuid").status_code == 404
