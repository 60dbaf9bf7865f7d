"""A person an agent names by a network account the agent did not verify proves it is theirs by signing in at
the network, on the user_verification_url page, as /forget asks for it. Only the very account named counts."""
from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from demo.models import Client
from erasure.agents.models import AgentRequest
from erasure.models import OptOutRequest
from tests.conftest import DEMO_CLIENT_ID, csrf_token_from
from tests.consent.helpers_connect import answer_at_network
from tests.erasure.helpers_optout import others_checksum, platform_rows
from tests.helpers_live_tokens import active, issued_tokens

MEI = "1003"  # Demo Social's @mei, whom the demo platform holds posts of, and who never signed up here


@pytest.fixture
def callback_registered(served, demo_state):
    """The served app's DRP callback registered with Demo Social, as an operator registers it with a network."""
    callback = f"{served.base}/drp/verify/networks/demo/callback"
    with demo_state.db_lock, demo_state.sessions.begin() as store:
        client = store.scalar(select(Client).where(Client.client_id == DEMO_CLIENT_ID))
        before = list(client.redirect_uris)
        client.redirect_uris = [*before, callback]
    yield
    with demo_state.db_lock, demo_state.sessions.begin() as store:
        store.scalar(select(Client).where(Client.client_id == DEMO_CLIENT_ID)).redirect_uris = before


def _waiting_for(agent, account: str, **claims) -> dict:
    status = agent.exercise("deletion", network_accounts=[{"network": "demo", "account_id": account,
                                                          "verified": False}], **claims).json()
    assert (status["status"], status["reason"]) == ("in_progress", "need_user_verification"), status
    return status


def _sign_in(served, person: requests.Session, status: dict, decision: str, account: str) -> requests.Response:
    """Press "Sign in at Demo Social" on the verification page, answer at Demo Social, and come back."""
    page = person.get(status["user_verification_url"], timeout=10)
    assert page.status_code == 200 and "Sign in at Demo Social" in page.text
    action = re.search(r'action="(/drp/verify/[^"]+/networks/demo)"', page.text)
    assert action, page.text
    started = person.post(served.base + action.group(1), data={"csrf_token": csrf_token_from(page.text)},
                          allow_redirects=False, timeout=10)
    assert started.status_code == 303, started.text
    back = answer_at_network(started.headers["Location"], decision, account)
    assert back.startswith(f"{served.base}/drp/verify/networks/demo/callback?"), back
    return person.get(back, timeout=30)


def _optouts(served) -> list[OptOutRequest]:
    with served.app.app_context():
        return list(db.session.scalars(select(OptOutRequest)))


def test_signing_in_with_the_named_account_runs_the_deletion(served, agent, drp_worker, demo_network,
                                                             platform_url, callback_registered):
    others = others_checksum(platform_url, MEI)
    assert platform_rows(platform_url, "posts", "author_id", MEI) > 0
    earlier = set(issued_tokens(demo_network, MEI))
    status = _waiting_for(agent, MEI)
    assert "network account" in status["processing_details"]

    person = requests.Session()
    page = person.get(f"{status['user_verification_url']}?redirect_to=https://agent.example/done", timeout=10)
    assert "Mail me the link" not in page.text  # no address was named: nothing to mail
    assert MEI not in page.text  # the page does not say which account was named
    assert _optouts(served) == []  # reading the page changed nothing

    done = _sign_in(served, person, status, "allow", MEI)
    assert done.status_code == 200 and "Your account is confirmed" in done.text
    assert 'href="https://agent.example/done"' in done.text
    # The network's token told us who signed in; it is revoked at once, not kept.
    proofs = set(issued_tokens(demo_network, MEI)) - earlier
    assert proofs and not any(active(demo_network, token) for token in proofs)
    going = agent.status(status["request_id"]).json()
    assert going["status"] == "in_progress" and "reason" not in going
    assert "signed in at Demo Social" in going["processing_details"]

    drp_worker.drain()
    assert agent.status(status["request_id"]).json()["status"] == "fulfilled"
    assert platform_rows(platform_url, "posts", "author_id", MEI) == 0
    assert others_checksum(platform_url, MEI) == others
    # The flow is single use: coming back with the same answer again changes nothing.
    assert person.get(done.url, timeout=10).status_code == 400


def test_another_account_or_a_no_at_the_network_changes_nothing(served, agent, platform_url, callback_registered):
    status = _waiting_for(agent, MEI)
    person = requests.Session()

    other = _sign_in(served, person, status, "allow", "1001")
    assert other.status_code == 400 and "an account Agent TEST_AGENT did not name" in other.text
    declined = _sign_in(served, person, status, "deny", MEI)
    assert declined.status_code == 200 and "You chose not to sign in at Demo Social" in declined.text
    assert f'href="/drp/verify/{status["request_id"]}"' in declined.text  # try again

    assert _optouts(served) == []
    assert platform_rows(platform_url, "posts", "author_id", MEI) > 0
    assert agent.status(status["request_id"]).json()["reason"] == "need_user_verification"
    # The page still waits for the proof, and the named account still goes through.
    assert "Your account is confirmed" in _sign_in(served, person, status, "allow", MEI).text


def test_an_email_and_an_account_offer_both_and_either_proof_will_do(served, agent, callback_registered):
    status = _waiting_for(agent, MEI, email="mei@example.org")
    assert "either" in status["processing_details"]
    person = requests.Session()
    page = person.get(status["user_verification_url"], timeout=10)
    assert "Mail me the link" in page.text and "m**@example.org" in page.text
    assert "Or sign in at Demo Social" in page.text
    assert _sign_in(served, person, status, "allow", MEI).status_code == 200
    with served.app.app_context():
        stored = db.session.get(AgentRequest, status["request_id"])
        assert stored.optout_request_id is not None and stored.reason is None


def test_a_request_without_that_network_or_without_a_start_here_is_refused(served, agent, callback_registered):
    by_email = agent.exercise("deletion", email="unsure@example.org").json()
    person = requests.Session()
    page = person.get(by_email["user_verification_url"], timeout=10)
    assert "Sign in at" not in page.text
    pressed = person.post(by_email["user_verification_url"] + "/networks/demo",
                          data={"csrf_token": csrf_token_from(page.text)}, allow_redirects=False, timeout=10)
    assert pressed.status_code == 404  # no account of that network was named
    stray = person.get(f"{served.base}/drp/verify/networks/demo/callback?code=x&state=y", timeout=10)
    assert stray.status_code == 400 and "did not start here" in stray.text
    assert _optouts(served) == []
