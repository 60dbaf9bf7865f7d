"""/forget, end to end: leaving without an account, proven through Demo Social's OAuth or a one-time email link."""
import datetime as dt
import hashlib
import logging
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, update

from app.db import utcnow
from app.models import User
from consent.models import Grant
from erasure.forget import control
from erasure.forget.views import PROOF, RedactEmailLinks
from erasure.models import EmailProof, OptOutRequest, Receipt
from tests.consent.helpers_connect import answer_at_network, local_path, query
from tests.erasure.forget.helpers_forget import STATUS, ask_for_link, leave, mailed_link
from tests.erasure.helpers_optout import (
    check_consent,
    demo_token_active,
    joined_person,
    others_checksum,
    outbox,
    platform_rows,
    prove_account,
    request_steps,
    sealed_tokens,
    start_at_network,
    submit_optout,
)
from tests.helpers_live_tokens import active, issued_tokens

# --- with a network account ------------------------------------------------------------------

@pytest.mark.demo_behaviours("iss", "discovery", "ends_grant", "unsupported_token_type")
def test_a_demo_account_that_never_signed_up_leaves(app, client, csrf_post, api_token, worker, demo_network,
                                                    platform_url, sessions):
    assert "Leave without an account" in client.get("/").get_data(as_text=True)
    page = client.get("/forget").get_data(as_text=True)
    assert "Sign in with Demo Social" in page and "Send me a link" in page
    earlier = set(issued_tokens(demo_network, "1003"))
    others = others_checksum(platform_url, "1003")
    assert platform_rows(platform_url, "posts", "author_id", "1003") == 20

    proven = prove_account(client, csrf_post, "1003")
    assert proven.status_code == 303 and proven.headers["Location"] == "/forget/optout"
    # The network's token told us who signed in; it is revoked at once, not kept.
    proofs = set(issued_tokens(demo_network, "1003")) - earlier
    assert proofs and not any(active(demo_network, token) for token in proofs)
    form = client.get("/forget/optout").get_data(as_text=True)
    assert "@mei" in form and "Opt out now" in form and "come back at any time, starting now" in form
    assert "Your Demo Social account @mei (id 1003)." in client.get("/forget").get_data(as_text=True)

    status_path = leave(client, csrf_post, reason="distrust")
    # No account was made, the proof is spent, and consent stops counting at once.
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(User)) == 0
        assert db.scalar(select(func.count()).select_from(Grant)) == 0
    with client.session_transaction() as sess:
        assert PROOF not in sess
    assert client.get("/forget/optout").status_code == 302
    assert check_consent(app, api_token, "1003") == "opted_out"
    page = client.get(status_path).get_data(as_text=True)
    assert "Your opt-out" in page and "Keep the address of this page" in page

    worker.drain()
    request_id = STATUS.match(status_path).group(1)
    steps = request_steps(app, request_id)
    assert [s.status for s in steps] == ["done"] * len(steps)
    assert {s.kind for s in steps} == {"purge", "forget", "verify", "receipt"}  # no grant to revoke, no address to mail
    assert "Done." in client.get(status_path).get_data(as_text=True)
    for table, column, value in (("posts", "author_id", "1003"), ("profiles", "account_id", "1003"),
                                 ("endorsements", "giver_id", "1003"), ("endorsements", "receiver_id", "1003"),
                                 ("scores", "handle", "mei")):
        assert platform_rows(platform_url, table, column, value) == 0, table
    assert others_checksum(platform_url, "1003") == others
    with sessions() as db:
        request = db.get(OptOutRequest, request_id)
        assert (request.source, request.scope, request.user_id, request.status) == ("forget", "all", None, "completed")
        assert request.identity_kinds == {"account": 1, "handle": 1}
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
        assert receipt is not None and request.receipt_id == receipt.id
    assert client.get(f"/receipts/{receipt.id}").status_code == 200
    token = api_token("service")
    answer = app.test_client().post("/api/v1/suppressions/check", headers={"Authorization": f"Bearer {token}"},
                                    json={"identities": [{"kind": "account", "network": "demo", "value": "1003"},
                                                         {"kind": "handle", "network": "demo", "value": "mei"}]})
    assert answer.json["results"] == [{"suppressed": True, "reason": "opted_out"}] * 2


@pytest.mark.demo_behaviours("ends_grant")
def test_an_account_a_member_connected_leaves_the_same_way(app, client, make_person, login, csrf_post, api_token,
                                                           worker, demo_network, platform_url, sessions):
    """Nothing tells the visitor the account is a member's; the member's grant stays theirs."""
    member_client = app.test_client()
    member = joined_person(member_client, make_person, login, csrf_post, account="1001")
    access, _refresh = sealed_tokens(app, "1001")
    assert check_consent(app, api_token, "1001") == "granted"

    pages = []
    for account, visitor in (("1001", client), ("1004", app.test_client())):
        prove_account(visitor, csrf_post, account)
        form = visitor.get("/forget/optout").get_data(as_text=True)
        pages.append(re.sub(r'value="[^"]+" name="csrf_token"|name="csrf_token"[^>]*>', "", form)
                     .replace("@liz (id 1001)", "@X").replace("@tomas (id 1004)", "@X"))
    assert pages[0] == pages[1]
    status_path = leave(client, csrf_post)

    assert check_consent(app, api_token, "1001") == "opted_out"  # whoever controls the account said so
    worker.drain()
    assert "Done." in client.get(status_path).get_data(as_text=True)
    assert platform_rows(platform_url, "posts", "author_id", "1001") == 0
    with sessions() as db:
        assert db.get(User, member.id) is not None
        grant = db.scalar(select(Grant).where(Grant.account_id == "1001"))
        assert grant is not None and grant.user_id == member.id
    assert demo_token_active(demo_network, access)  # the member's own tokens were not touched
    assert member_client.get("/me").status_code == 200


def test_a_wrong_state_changes_nothing(app, client, csrf_post):
    back = answer_at_network(start_at_network(client, csrf_post), "allow", "1002")
    params = query(back)
    forged = client.get(f"/forget/networks/demo/callback?code={params['code']}&state=not-the-state")
    assert forged.status_code == 400
    assert "did not start here" in forged.get_data(as_text=True)
    # The flow is single use: the real state does not work after a failed attempt either.
    assert client.get(local_path(back)).status_code == 400
    assert app.test_client().get(local_path(back)).status_code == 400  # nor from another browser
    with client.session_transaction() as sess:
        assert PROOF not in sess


def test_denying_at_the_network(client, csrf_post):
    back = answer_at_network(start_at_network(client, csrf_post), "deny", "1002")
    answer = client.get(local_path(back))
    assert answer.status_code == 302 and answer.headers["Location"] == "/forget"
    assert "You chose not to sign in at Demo Social. Nothing was changed." in client.get("/forget").get_data(
        as_text=True)
    assert client.get("/forget/optout").status_code == 302


def test_the_network_is_down(client, csrf_post, demo_network):
    back = answer_at_network(start_at_network(client, csrf_post), "allow", "1002")
    demo_network.stop()
    answer = client.get(local_path(back))
    assert answer.status_code == 302 and answer.headers["Location"] == "/forget"
    page = client.get("/forget").get_data(as_text=True)
    assert "Demo Social could not be reached" in page and "Nothing was changed" in page
    with client.session_transaction() as sess:
        assert PROOF not in sess


def test_an_unknown_network(client, csrf_post):
    assert csrf_post(client, "/forget/networks/myspace", page="/forget").status_code == 404
    assert client.get("/forget/networks/myspace/callback?state=x&code=y").status_code == 404


def test_the_proof_lasts_thirty_minutes(client, csrf_post):
    prove_account(client, csrf_post, "1002")
    assert client.get("/forget/optout").status_code == 200
    with client.session_transaction() as sess:
        expires = dt.datetime.fromtimestamp(sess[PROOF]["exp"], dt.UTC)
        assert dt.timedelta(minutes=29) < expires - utcnow() <= dt.timedelta(minutes=30)
        sess[PROOF] = {**sess[PROOF], "exp": int((utcnow() - dt.timedelta(seconds=1)).timestamp())}
    assert client.get("/forget/optout").status_code == 302
    assert client.get("/forget/export").status_code == 302


def test_the_form_needs_its_csrf_token(client, csrf_post):
    prove_account(client, csrf_post, "1002")
    assert client.post("/forget/optout", data={"public_status": "yes"}).status_code == 400
    assert client.post("/forget/networks/demo").status_code == 400
    assert client.post("/forget/email", data={"email": "a@example.org"}).status_code == 400


# --- with an email address -------------------------------------------------------------------

def test_leaving_with_an_email_link(app, client, csrf_post, worker, platform_url, sessions):
    address = "otto@elsewhere.example"  # on the platform's mailing list; never signed up here
    assert platform_rows(platform_url, "mailing_list", "email", address) == 1
    sent = ask_for_link(client, csrf_post, "  Otto@Elsewhere.example ")
    assert sent.status_code == 200 and "we've sent a link" in sent.get_data(as_text=True)
    path = mailed_link(app, address)

    # Opening the link (as a mail scanner does) only shows the confirmation, however often.
    browser = app.test_client()
    for _ in range(3):
        opened = browser.get(path)
        assert opened.status_code == 200 and "Confirm it's you" in opened.get_data(as_text=True)
        assert opened.headers["Cache-Control"] == "no-store"
        assert opened.headers["Referrer-Policy"] == "no-referrer"
    with sessions() as db:
        assert db.scalar(select(EmailProof.used_at)) is None
    confirmed = csrf_post(browser, path)
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == "/forget/optout"
    assert "the email address otto@elsewhere.example" in browser.get("/forget/optout").get_data(as_text=True)

    # Once only: a second POST, or opening it again, is refused.
    again = app.test_client()
    assert again.get(path).status_code == 400
    refused = csrf_post(again, path, page="/forget")
    assert refused.status_code == 400 and "can't be used" in refused.get_data(as_text=True)
    with again.session_transaction() as sess:
        assert PROOF not in sess

    status_path = leave(browser, csrf_post)
    mails = [m for m in outbox(app) if m["To"] == address]
    assert status_path in mails[-1].get_content()  # the status link is mailed, as to a member
    worker.drain()
    assert platform_rows(platform_url, "mailing_list", "email", address) == 0
    request_id = STATUS.match(status_path).group(1)
    assert [s.kind for s in request_steps(app, request_id)][-1] == "notify"
    assert "complete" in outbox(app)[-1]["Subject"] and outbox(app)[-1]["To"] == address
    with sessions() as db:
        request = db.get(OptOutRequest, request_id)
        assert request.status == "completed" and request.receipt_id
        assert request.identity_kinds == {"email": 1}


def test_the_same_answer_whether_or_not_the_address_is_known(app, client, csrf_post, make_person):
    make_person("member@example.org")
    answers = [ask_for_link(client, csrf_post, address) for address in
               ("member@example.org", "priya@elsewhere.example", "nobody-at-all@example.org")]
    assert {a.status_code for a in answers} == {200}
    assert len({a.get_data() for a in answers}) == 1
    # Headers too, but for the per-response ones: the date, the request id, the re-signed session cookie.
    varying = ("Date", "X-Request-ID", "Set-Cookie")
    assert len({tuple(sorted((k, v) for k, v in a.headers if k not in varying)) for a in answers}) == 1
    assert len({tuple(sorted(v.split("=")[0] for v in a.headers.getlist("Set-Cookie"))) for a in answers}) == 1
    assert len([m for m in outbox(app) if "leave the platform" in m["Subject"]]) == 3


def test_a_bad_address_is_refused_with_the_form(client, csrf_post):
    answer = ask_for_link(client, csrf_post, "not an address")
    assert answer.status_code == 400 and "Send me a link" in answer.get_data(as_text=True)


def test_an_expired_link_is_refused(app, client, csrf_post, sessions):
    ask_for_link(client, csrf_post, "sam@elsewhere.example")
    path = mailed_link(app, "sam@elsewhere.example")
    with sessions() as db:
        proof = db.scalar(select(EmailProof))
        assert proof.expires_at - proof.created_at <= dt.timedelta(minutes=10)
        db.execute(update(EmailProof).values(
            created_at=utcnow() - dt.timedelta(minutes=11), expires_at=utcnow() - dt.timedelta(minutes=1)))
        db.commit()
    assert client.get(path).status_code == 400
    refused = csrf_post(client, path, page="/forget")
    assert refused.status_code == 400 and "more than 10 minutes" in refused.get_data(as_text=True)
    assert client.get("/forget/optout").status_code == 302


def test_links_expire_by_the_clock_and_only_a_hash_is_kept(app, session):
    now = utcnow()
    token = control.new_email_link(session, "liz@demo.example", now)
    session.commit()
    row = session.scalar(select(EmailProof))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in row.address_box and b"liz@demo.example" not in row.address_box
    assert control.link_usable(session, token, now + dt.timedelta(minutes=9, seconds=59))
    assert not control.link_usable(session, token, now + dt.timedelta(minutes=10))
    assert control.use_email_link(session, token, now + dt.timedelta(minutes=10)) is None
    assert control.use_email_link(session, token[:-1] + ("A" if token[-1] != "A" else "B"), now) is None
    assert control.use_email_link(session, token, now + dt.timedelta(minutes=1)) == "liz@demo.example"
    assert control.use_email_link(session, token, now + dt.timedelta(minutes=2)) is None
    session.commit()
    # Links that ran out are cleared when the next one is made.
    control.new_email_link(session, "other@example.org", now + dt.timedelta(minutes=11))
    session.commit()
    assert session.scalar(select(func.count()).select_from(EmailProof)) == 1


def test_email_links_are_rate_limited_per_address_and_per_client(make_app, csrf_post):
    app = make_app({"RATELIMIT_ENABLED": True})
    client = app.test_client()
    per_address = [ask_for_link(client, csrf_post, "Mei@demo.example",
                                environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}).status_code for n in range(4)]
    assert per_address == [200, 200, 200, 429]
    assert ask_for_link(client, csrf_post, "other@demo.example",
                        environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 200
    per_client = [ask_for_link(client, csrf_post, f"p{n}@example.org",
                               environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code for n in range(11)]
    assert per_client == [200] * 10 + [429]


def test_the_link_stays_out_of_access_logs():
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '%s - - "%s" %s', (
        "127.0.0.1", "GET /forget/email/abcdefghijklmnopqrstuvwxyz0123456789 HTTP/1.1", "200"), None)
    record.path = "/forget/email/abcdefghijklmnopqrstuvwxyz0123456789"
    RedactEmailLinks().filter(record)
    assert "abcdefghij" not in record.getMessage() and "abcdefghij" not in record.path
    assert "/forget/email/[redacted]" in record.getMessage()


def test_members_still_leave_from_their_own_page(client, make_person, login, csrf_post):
    """/forget adds a door; the member's opt-out is unchanged."""
    joined_person(client, make_person, login, csrf_post, account="1005", consent=False)
    assert "Leave without an account" not in client.get("/me").get_data(as_text=True)
    assert urlsplit(submit_optout(client, csrf_post, "all")).path.startswith("/optout/")


@pytest.mark.parametrize("member_holds_it", [False, True])
def test_where_revoking_ends_the_whole_authorization_a_members_account_is_left_alone(
        app, make_person, monkeypatch, member_holds_it, vault):
    import dataclasses

    from app.extensions import db
    from consent.grants import store_grant
    from erasure.forget import network_proof

    calls = []
    monkeypatch.setattr(network_proof, "revoke", lambda network, tokens, http, timeout: calls.append(tokens) or
                        type("Outcome", (), {"done": True, "kind": "revoked"})())
    demo = app.extensions["networks"]["demo"]
    whole = dataclasses.replace(demo, revocation=dataclasses.replace(demo.revocation, ends_grant=True))
    token_scoped = dataclasses.replace(demo, revocation=dataclasses.replace(demo.revocation, ends_grant=False))
    if member_holds_it:
        member = make_person()
        with app.app_context():
            store_grant(db.session, vault, member.id, demo, {"access_token": "at"},
                        {"sub": "4242"}, utcnow())
            db.session.commit()
    with app.test_request_context():
        network_proof.discard(whole, {"access_token": "proof-token"}, "4242")
        network_proof.discard(token_scoped, {"access_token": "proof-token"}, "4242")  # always revoked
    assert len(calls) == (1 if member_holds_it else 2)
