"""Leaving, end to end: the form, consent stopping at once, every step done by the worker, coming back."""
import base64
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from erasure.models import OptOutRequest, Receipt, StepKind
from tests.erasure.helpers_optout import (
    check_consent,
    demo_token_active,
    joined_person,
    others_checksum,
    outbox,
    platform_rows,
    request_steps,
    sealed_tokens,
    submit_optout,
)


@pytest.mark.demo_behaviours("iss", "discovery", "ends_grant", "unsupported_token_type", "resource")
def test_leaving_everything(app, client, make_person, login, csrf_post, api_token, worker, demo_network,
                            platform_url, sessions):
    person = joined_person(client, make_person, login, csrf_post, account="1002")
    access, refresh = sealed_tokens(app, "1002")
    assert demo_token_active(demo_network, access)
    assert check_consent(app, api_token, "1002") == "granted"
    others = others_checksum(platform_url, "1002")
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 20

    status_path = submit_optout(client, csrf_post, "all", reason="changed_without_notice")
    # Consent stops counting the moment the request is in, before anything is purged.
    assert check_consent(app, api_token, "1002") == "opted_out"
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 20
    page = client.get(status_path).get_data(as_text=True)
    assert "Revoke our access at Demo Social" in page and "come back at any time, starting now" in page
    assert "<noscript><p><a href=" in page and "/static/status.js" in page  # updates itself, or a link does
    mails = outbox(app)
    assert len(mails) == 1 and status_path in mails[0].get_content()

    worker.drain()
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
    assert [s.status for s in request_steps(app, request_id)] == ["done"] * len(request_steps(app, request_id))
    page = client.get(status_path).get_data(as_text=True)
    assert "Done." in page and "<noscript>" not in page
    assert "20 posts" in page and " rows" not in page  # each category named, in plain words

    # The network confirms our tokens are dead; the person's rows are gone, everyone else's intact.
    assert not demo_token_active(demo_network, access)
    assert not demo_token_active(demo_network, refresh)
    for table, column in (("posts", "author_id"), ("profiles", "account_id"), ("endorsements", "giver_id"),
                          ("endorsements", "receiver_id"), ("scores", "handle")):
        value = "1002" if column != "handle" else "omar"
        assert platform_rows(platform_url, table, column, value) == 0, table
    assert others_checksum(platform_url, "1002") == others
    assert check_consent(app, api_token, "1002") == "opted_out"
    assert len(outbox(app)) == 2 and "complete" in outbox(app)[1]["Subject"]

    with sessions() as db:
        request = db.get(OptOutRequest, request_id)
        assert request.status == "completed" and request.identities_sealed is None
        from app.models import User

        assert db.get(User, person.id) is None
        from consent.models import ConsentEvent

        # The person's ledger is gone; what proves the withdrawal stays, named after the request.
        assert not db.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == person.id)).all()
        kept = db.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == f"optout:{request_id}")).all()
        assert [(e.network, e.purpose, e.action, e.method) for e in kept] == [("demo", "scoring", "withdraw", "optout")]
    verified = app.test_cli_runner().invoke(args=["consent", "verify-ledger"])
    assert verified.exit_code == 0, verified.output


def test_coming_back_at_once(app, client, make_person, login, csrf_post, api_token, worker):
    person = joined_person(client, make_person, login, csrf_post, account="1003")
    submit_optout(client, csrf_post, "all")
    # Straight away, even before the worker has run: same email, same network account.
    response = csrf_post(client, "/signup", {"email": person.email, "password": person.password})
    assert response.status_code == 302
    from tests.consent.helpers_connect import connect_through_demo

    assert connect_through_demo(client, csrf_post, "1003").status_code in (302, 303)
    csrf_post(client, "/consents", {"consent:demo:scoring": "on"})
    assert check_consent(app, api_token, "1003") == "granted"
    worker.drain()  # the old request finishes without touching the new grant or consent
    assert check_consent(app, api_token, "1003") == "granted"


def test_leaving_one_network(app, client, make_person, login, csrf_post, api_token, worker, platform_url):
    joined_person(client, make_person, login, csrf_post, account="1004")
    status_path = submit_optout(client, csrf_post, "demo")
    assert check_consent(app, api_token, "1004") == "withdrawn"
    worker.drain()
    assert platform_rows(platform_url, "posts", "author_id", "1004") == 0
    assert client.get("/me").status_code == 200  # still signed in: only the network was left
    assert "Done." in client.get(status_path).get_data(as_text=True)


def test_the_status_link_is_a_capability(app, client, make_person, login, csrf_post, sessions):
    joined_person(client, make_person, login, csrf_post, account="1005", consent=False)
    status_path = submit_optout(client, csrf_post, "all")
    path, query = status_path.split("?")
    k = parse_qs(query)["k"][0]
    anonymous = app.test_client()
    assert anonymous.get(status_path).status_code == 200
    assert anonymous.get(path).status_code == 404
    forged = k[:10] + ("B" if k[10] == "A" else "A") + k[11:]
    assert anonymous.get(path + "?k=" + forged).status_code == 404
    assert anonymous.get("/optout/not-a-uuid?k=" + k).status_code == 404
    with sessions() as db:
        stored = db.scalar(select(OptOutRequest))
        assert k not in repr(stored.__dict__)


def test_the_form_refuses_a_network_not_connected(client, make_person, login, csrf_post):
    joined_person(client, make_person, login, csrf_post, account="1001", consent=False)
    response = csrf_post(client, "/optout", {"scope": "myspace", "public_status": "yes"})
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)


def test_rows_written_after_the_purge_are_caught_by_verify(client, make_person, login, csrf_post, worker,
                                                           platform_url, sessions):
    from sqlalchemy import create_engine, text, update

    from erasure.models import ErasureStep, Receipt
    from erasure.receipts.issue import claims_of

    joined_person(client, make_person, login, csrf_post, account="1005", consent=False)
    status_path = submit_optout(client, csrf_post, "all")
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
    with sessions() as db:  # hold verify back, as a slow queue would
        db.execute(update(ErasureStep).where(ErasureStep.request_id == request_id, ErasureStep.kind == "verify")
                   .values(not_before=utcnow_later()))
        db.commit()
    worker.drain()
    assert platform_rows(platform_url, "posts", "author_id", "1005") == 0
    store = create_engine(platform_url)
    with store.begin() as conn:  # the platform ingests two more posts of theirs meanwhile
        conn.execute(text("INSERT INTO posts (author_id, body, created_at) VALUES "
                          "('1005', 'late', CURRENT_TIMESTAMP), ('1005', 'later', CURRENT_TIMESTAMP)"))
    store.dispose()
    with sessions() as db:
        db.execute(update(ErasureStep).where(ErasureStep.request_id == request_id, ErasureStep.kind == "verify")
                   .values(not_before=utcnow_now()))
        db.commit()
    worker.drain()
    assert platform_rows(platform_url, "posts", "author_id", "1005") == 0
    with sessions() as db:
        assert db.get(OptOutRequest, request_id).status == "completed"
        claims = claims_of(db.scalar(select(Receipt).where(Receipt.request_id == request_id)))
    assert {"store": "platform", "category": "posts", "rows": 22} in claims["purged"]


def utcnow_later():
    import datetime as dt

    from app.db import utcnow

    return utcnow() + dt.timedelta(days=1)


def utcnow_now():
    from app.db import utcnow

    return utcnow()


def test_the_forget_step_deletes_ownstorys_own_records_and_shows_on_the_status_page(
        app, client, make_person, login, csrf_post, worker):
    person = joined_person(client, make_person, login, csrf_post, account="1001")
    status_path = submit_optout(client, csrf_post, "all")
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
    [forget] = [s for s in request_steps(app, request_id) if s.kind == StepKind.FORGET]
    assert (forget.target, forget.status) == ("ownstory", "pending")
    assert not [s for s in request_steps(app, request_id) if s.kind == "purge" and s.target == "ownstory"]
    own_records = re.compile(r'<li class="step (\w+)" id="step-[^"]+"><strong class="title">Delete Ownstory&#39;s own '
                             r'records of you</strong><br>\s*<span class="outcome">([^<]*)</span>')
    assert own_records.findall(client.get(status_path).get_data(as_text=True)) == [
        ("pending", "Waiting until access is revoked everywhere.")]

    worker.drain()
    [forget] = [s for s in request_steps(app, request_id) if s.kind == StepKind.FORGET]
    assert forget.status == "done" and forget.result == {"grants": 0, "account": 1, "consent_events": 2}
    [(status, outcome)] = own_records.findall(client.get(status_path).get_data(as_text=True))
    assert status == "done" and outcome.startswith("Deleted (") and "row" not in outcome
    with app.extensions["ownstory_db"]["sessionmaker"]() as db:
        from app.models import User

        assert db.get(User, person.id) is None
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
    payload = json.loads(base64.urlsafe_b64decode(receipt.jws.split(".")[1] + "=="))
    assert payload["purged"] and all(p["store"] == "platform" for p in payload["purged"])  # own records: not listed
