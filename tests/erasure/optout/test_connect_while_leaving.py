"""No token outlives an opt-out: a network connected from another session while the person leaves everything is
refused, or revoked; counted by asking Demo Social itself (RFC 7662 introspection) which of its tokens still work."""
from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from app.db import utcnow
from consent.grants import store_grant
from consent.models import Grant
from demo.models import Token
from erasure.context import context_from_app
from erasure.models import OptOutRequest, StepKind
from tests.conftest import db_session
from tests.consent.helpers_connect import answer_at_network, local_path, start_connect, token_from_demo
from tests.erasure.helpers_optout import demo_token_active, joined_person, request_steps, submit_optout

CLOSING = "this account is closing and connects no network"


def last_token_id(demo_state) -> int:
    with demo_state.sessions() as db:
        return db.scalar(select(func.max(Token.id))) or 0


def live_tokens(demo_network, demo_state, account: str, since: int) -> int:
    """Tokens Demo Social issued for the account since `since` that it still takes, access or refresh."""
    with demo_state.sessions() as db:
        issued = list(db.scalars(select(Token).where(Token.account_id == account, Token.id > since)))
    return sum(demo_token_active(demo_network, token) for t in issued
               for token in (t.access_token, t.refresh_token) if token)


def second_session(app, login, person):
    other = app.test_client()
    login(other, person)
    return other


def test_a_connect_finished_after_leaving_everything_leaves_no_live_token(
        app, client, make_person, login, csrf_post, worker, demo_network, demo_state):
    since = last_token_id(demo_state)
    person = joined_person(client, make_person, login, csrf_post, account="1005")
    other = second_session(app, login, person)
    started = start_connect(other, csrf_post)  # the other session is at Demo Social...
    back = answer_at_network(started.headers["Location"], "allow", "1005")

    submit_optout(client, csrf_post, "all")  # ...when the person leaves everything here
    answer = other.get(local_path(back))  # and then comes back from the network
    worker.drain()

    assert live_tokens(demo_network, demo_state, "1005", since) == 0
    assert answer.status_code == 302 and not answer.headers["Location"].startswith("/consents")


def test_a_connect_whose_token_came_while_the_person_left_is_handed_back(
        app, client, make_person, login, csrf_post, worker, demo_network, demo_state):
    """The network gave the token, then the opt-out went in, then the connect came to store it."""
    since = last_token_id(demo_state)
    person = joined_person(client, make_person, login, csrf_post, account="1004")
    other = second_session(app, login, person)
    back = answer_at_network(start_connect(other, csrf_post).headers["Location"], "allow", "1004")
    userinfo_calls = demo_state.calls["userinfo"]
    demo_state.faults.set("userinfo", delay=3, times=1)  # the token is exchanged; the userinfo answer is slow
    answers = []
    coming_back = threading.Thread(target=lambda: answers.append(other.get(local_path(back), follow_redirects=True)))
    coming_back.start()
    while demo_state.calls["userinfo"] == userinfo_calls:
        time.sleep(0.02)
    submit_optout(client, csrf_post, "all")
    coming_back.join(30)
    with db_session(app) as db:
        stored = db.scalar(select(func.count()).select_from(Grant))
    worker.drain()

    assert live_tokens(demo_network, demo_state, "1004", since) == 0
    page = answers[0].get_data(as_text=True)
    assert CLOSING in page and "Nothing was connected" in page
    assert stored == 0  # refused, and the token handed back at once: not left for the opt-out to find


def test_connecting_is_refused_while_leaving_everything(app, client, make_person, login, csrf_post, demo_state):
    person = joined_person(client, make_person, login, csrf_post, account="1003", consent=False)
    other = second_session(app, login, person)
    submit_optout(client, csrf_post, "all")
    authorize_calls = demo_state.calls["authorize"]

    # Leaving everything ends every session of the account: the other browser holds no page to connect from,
    # and a connect it sends anyway is not sent to the network.
    assert other.get("/me").status_code == 302 and other.get("/me").headers["Location"].startswith("/login")
    answer = other.post("/networks/demo/connect")
    assert answer.status_code in (302, 400) and demo_state.calls["authorize"] == authorize_calls


def test_the_forget_step_revokes_a_grant_that_came_in_behind_the_opt_out(
        app, client, make_person, login, csrf_post, worker, demo_network, sessions):
    """Whatever raced past the checks, the forget step does not delete a grant with its token still live."""
    person = joined_person(client, make_person, login, csrf_post, account="1002", consent=False)
    status_path = submit_optout(client, csrf_post, "all")
    ctx = context_from_app(app)
    token, userinfo = token_from_demo(ctx.networks["demo"], "1002")
    with sessions() as db:  # as a connect that got in after the submission would have stored it
        store_grant(db, ctx.vault, person.id, ctx.networks["demo"], token, userinfo, utcnow())
        db.commit()
    assert demo_token_active(demo_network, token["access_token"])

    worker.drain()

    assert not demo_token_active(demo_network, token["access_token"])
    assert not demo_token_active(demo_network, token["refresh_token"])
    request_id = status_path.split("?")[0].rsplit("/", 1)[1]
    revokes = [s for s in request_steps(app, request_id) if s.kind == StepKind.REVOKE]
    assert [(s.status, s.result["outcome"]) for s in revokes] == [("done", "revoked")] * 2
    with sessions() as db:
        assert db.get(OptOutRequest, request_id).status == "completed"
    page = client.get(status_path).get_data(as_text=True)
    assert page.count("Revoke our access at Demo Social") == 2


def test_connecting_again_after_leaving_one_network_keeps_the_new_connection(
        app, client, make_person, login, csrf_post, worker, demo_network):
    from tests.consent.helpers_connect import connect_through_demo, stored_grants
    from tests.erasure.helpers_optout import sealed_tokens

    joined_person(client, make_person, login, csrf_post, account="1001", consent=False)
    submit_optout(client, csrf_post, "demo")
    assert connect_through_demo(client, csrf_post, "1001").status_code in (302, 303)
    access, _refresh = sealed_tokens(app, "1001")

    worker.drain()  # the opt-out finishes: its forget step leaves the person's new consent alone

    assert [g.account_id for g in stored_grants(app, network="demo")] == ["1001"]
    assert demo_token_active(demo_network, access)
