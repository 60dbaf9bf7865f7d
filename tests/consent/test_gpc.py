"""Global Privacy Control: Sec-GPC: 1 withdraws the gpc purposes once, in the ledger, and the person is told."""
from __future__ import annotations

import html
import re
import threading

import pytest
from sqlalchemy import select

from consent.models import ConsentEvent, ConsentState, GpcSignal
from tests.conftest import csrf_token_from, db_session, networks_toml

GPC = {"Sec-GPC": "1"}
NOTICE = "Your browser asked us not to sell or share your data (Global Privacy Control)"
ALL = {f"consent:{n}:{p}": "on" for n in ("demo", "acme") for p in ("scoring", "research", "partner_sharing")}


@pytest.fixture
def app(make_app, tmp_path, demo_network):
    """Two networks, so that "every network" means something."""
    networks = tmp_path / "networks-two.toml"
    demo = networks_toml(demo_network.url)
    networks.write_text(demo + demo.replace("networks.demo", "networks.acme").replace("Demo Social", "Acme Social"))
    return make_app(networks=networks)


@pytest.fixture
def person(app, client, make_person, connect, login, csrf_post):
    """Connected to both networks and consenting to every purpose, without the signal."""
    user = make_person()
    connect(user, "demo")
    connect(user, "acme")
    login(client, user)
    assert csrf_post(client, "/consents", ALL).status_code == 302
    return user


def post_form(client, path: str, data: dict, headers: dict):
    """Fetch the form and send it back as a browser would, with the same headers both times."""
    page = client.get(path, headers=headers).get_data(as_text=True)
    return client.post(path, data={**data, "csrf_token": csrf_token_from(page)}, headers=headers)


def states(app, user) -> dict:
    with db_session(app) as db:
        rows = db.scalars(select(ConsentState).where(ConsentState.subject_id == user.id))
        return {(s.network, s.purpose): s.status for s in rows}


def events(app, user) -> list[tuple]:
    with db_session(app) as db:
        rows = db.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == user.id).order_by(ConsentEvent.seq))
        return [(e.network, e.purpose, e.action, e.method) for e in rows]


def gpc_withdrawals(app, user) -> list[tuple]:
    return [e for e in events(app, user) if e[3] == "gpc"]


def notice_on(page: str) -> str | None:
    found = re.search(r'<p class="flash info" role="status">(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else None


def ledger_intact(app) -> None:
    verified = app.test_cli_runner().invoke(args=["consent", "verify-ledger"])
    assert verified.exit_code == 0, verified.output


def test_the_signal_withdraws_the_gpc_purposes_on_every_network_and_says_so(app, client, person, api_token):
    before = events(app, person)

    page = client.get("/me", headers=GPC)

    assert page.status_code == 200
    assert gpc_withdrawals(app, person) == [("acme", "partner_sharing", "withdraw", "gpc"),
                                            ("demo", "partner_sharing", "withdraw", "gpc")]
    assert events(app, person)[:len(before)] == before  # appended, nothing rewritten
    assert states(app, person) == {(n, p): "withdrawn" if p == "partner_sharing" else "granted"
                                   for n in ("demo", "acme") for p in ("scoring", "research", "partner_sharing")}
    notice = notice_on(page.get_data(as_text=True))
    assert notice.startswith(NOTICE + ", so we withdrew your consent to: ")
    assert "Sharing with partners (Acme Social); Sharing with partners (Demo Social)" in notice
    ledger_intact(app)
    # The platform's consent check says so at once.
    answer = app.test_client().post(
        "/api/v1/consent/check", headers={"Authorization": f"Bearer {api_token('service')}"},
        json={"checks": [{"network": "demo", "subject": person.id, "purpose": p}
                         for p in ("partner_sharing", "scoring")]})
    assert [r["reason"] for r in answer.json["results"]] == ["withdrawn", "granted"]


def test_the_signal_on_every_request_withdraws_once(app, client, person):
    client.get("/me", headers=GPC)
    after_first = events(app, person)
    for path in ("/me", "/consents", "/me"):
        page = client.get(path, headers=GPC)
        assert page.status_code == 200 and notice_on(page.get_data(as_text=True)) is None
    other_browser = app.test_client()  # signed in elsewhere, the signal already on record
    from tests.conftest import PASSWORD

    page = post_form(other_browser, "/login", {"email": person.email, "password": PASSWORD}, GPC)
    assert page.status_code == 302
    assert other_browser.get("/me", headers=GPC).status_code == 200
    assert events(app, person) == after_first


def test_without_the_header_nothing_changes(app, client, person, sessions):
    before, consents = events(app, person), states(app, person)
    for headers in ({}, {"Sec-GPC": "0"}, {"Sec-GPC": "yes"}):
        page = client.get("/me", headers=headers)
        assert page.status_code == 200 and NOTICE not in page.get_data(as_text=True)
    assert events(app, person) == before and states(app, person) == consents
    with sessions() as db:
        assert db.scalars(select(GpcSignal)).all() == []


def test_consent_given_again_after_the_signal_stands(app, client, person):
    client.get("/me", headers=GPC)
    response = post_form(client, "/consents", ALL, GPC)  # the person ticks it again, the signal still on
    assert response.status_code == 302
    assert states(app, person)[("demo", "partner_sharing")] == "granted"
    for _ in range(2):
        page = client.get("/consents", headers=GPC)
        assert NOTICE not in page.get_data(as_text=True)
    assert states(app, person)[("demo", "partner_sharing")] == "granted"
    assert len(gpc_withdrawals(app, person)) == 2
    ledger_intact(app)


def test_a_first_consent_given_with_the_signal_on_stands(app, client, make_person, connect, login):
    user = make_person()
    connect(user, "demo")
    login(client, user)
    assert notice_on(client.get("/me", headers=GPC).get_data(as_text=True)) is None  # nothing to withdraw
    assert post_form(client, "/consents", {"consent:demo:partner_sharing": "on"}, GPC).status_code == 302
    client.get("/me", headers=GPC)
    assert states(app, user) == {("demo", "partner_sharing"): "granted"}
    assert gpc_withdrawals(app, user) == []


def test_a_signal_that_stops_and_starts_again_is_a_new_one(app, client, person, sessions):
    client.get("/me", headers=GPC)
    post_form(client, "/consents", ALL, GPC)
    client.get("/me")  # the browser no longer sends it
    with sessions() as db:
        assert db.get(GpcSignal, person.id) is None

    page = client.get("/me", headers=GPC)

    assert notice_on(page.get_data(as_text=True)) is not None
    assert len(gpc_withdrawals(app, person)) == 4
    assert states(app, person)[("acme", "partner_sharing")] == "withdrawn"
    ledger_intact(app)


def test_a_form_sent_as_the_signal_arrives_is_honoured_on_the_next_page(app, client, person):
    # The form was loaded without the signal; the browser sends it with the form.
    response = client.post("/consents", data={**ALL, "csrf_token": csrf_token_from(
        client.get("/consents").get_data(as_text=True))}, headers=GPC)
    assert response.status_code == 302 and gpc_withdrawals(app, person) == []
    page = client.get(response.headers["Location"], headers=GPC)
    assert NOTICE in page.get_data(as_text=True)
    assert len(gpc_withdrawals(app, person)) == 2


def test_two_requests_at_once_withdraw_once(app, person, login):
    browsers = [app.test_client(), app.test_client()]
    for browser in browsers:
        login(browser, person)
    start = threading.Barrier(2)
    statuses = []

    def visit(browser) -> None:
        start.wait(timeout=10)
        statuses.append(browser.get("/me", headers=GPC).status_code)

    threads = [threading.Thread(target=visit, args=(b,)) for b in browsers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200, 200]
    assert len(gpc_withdrawals(app, person)) == 2
    ledger_intact(app)


def test_only_signed_in_people_are_affected(app, make_person, login, sessions):
    anonymous = app.test_client()
    assert anonymous.get("/", headers=GPC).status_code == 200
    operator = app.test_client()
    login(operator, make_person(role="operator"))
    assert operator.get("/", headers=GPC).status_code in (200, 302)
    with sessions() as db:
        assert db.scalars(select(GpcSignal)).all() == [] and db.scalars(select(ConsentEvent)).all() == []


def test_gpc_json_is_served(client):
    answer = client.get("/.well-known/gpc.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.json["gpc"] is True
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", answer.json["lastUpdate"])
    assert set(answer.json) == {"gpc", "lastUpdate"}
