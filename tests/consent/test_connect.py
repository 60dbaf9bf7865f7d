"""The connect flow end to end: Ownstory's test client, and Demo Social on a real loopback port."""
from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from consent.connect import RedactOAuthParams
from consent.oauth import NetworkHttp
from tests.conftest import BASE_URL, DEMO_CLIENT_SECRET, networks_toml
from tests.consent.helpers_connect import (
    PENDING,
    answer_at_network,
    connect_through_demo,
    flashed,
    local_path,
    query,
    start_connect,
    stored_grants,
)

CONNECTED = "Connected Demo Social. Nothing is shared until you consent to a purpose."


@pytest.fixture
def person(make_person, login, client):
    user = make_person()
    login(client, user)
    return user


@pytest.mark.demo_behaviours("iss", "discovery", "offline_needs_consent", "resource")
def test_connecting_demo_social_stores_the_grant(app, client, csrf_post, person, demo_network, vault):
    response = connect_through_demo(client, csrf_post, account="1001")

    assert response.status_code == 302 and response.headers["Location"] == "/consents"
    assert CONNECTED in flashed(client)
    [grant] = stored_grants(app, user_id=person.id)
    assert (grant.network, grant.account_id, grant.handle) == ("demo", "1001", "liz")
    assert grant.scope_list == ["profile", "posts"]
    assert grant.granted_at is not None and grant.expires_at > grant.granted_at
    # The stored tokens are the real ones: Demo Social accepts the access token.
    access = vault.open(grant.access_token)
    me = requests.get(f"{demo_network.url}/userinfo", headers={"Authorization": f"Bearer {access}"}, timeout=5)
    assert me.json()["sub"] == "1001"
    assert vault.open(grant.refresh_token)


def test_connect_sends_state_and_an_s256_challenge(client, csrf_post, person, demo_network):
    response = start_connect(client, csrf_post)

    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(f"{demo_network.url}/oauth/authorize?")
    params = query(location)
    with client.session_transaction() as cookie:
        pending = cookie[PENDING]["demo"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(pending["verifier"].encode()).digest()).rstrip(b"=")
    assert params["code_challenge"] == challenge.decode() and params["code_challenge_method"] == "S256"
    assert params["state"] == pending["state"] and len(pending["state"]) >= 20
    assert params["redirect_uri"] == f"{BASE_URL}/networks/demo/callback"
    assert params["response_type"] == "code" and params["scope"] == "profile posts"


def test_reconnecting_keeps_one_grant_and_its_first_date(app, client, csrf_post, person):
    connect_through_demo(client, csrf_post)
    [first] = stored_grants(app, user_id=person.id)
    sealed, since = first.access_token, first.granted_at

    assert connect_through_demo(client, csrf_post).headers["Location"] == "/consents"
    [again] = stored_grants(app, user_id=person.id)
    assert again.id == first.id and again.granted_at == since
    assert again.access_token != sealed


def test_an_account_held_by_another_person_is_refused(client, csrf_post, person, make_person, login, app):
    connect_through_demo(client, csrf_post, account="1002")
    other = app.test_client()
    login(other, make_person())

    response = connect_through_demo(other, csrf_post, account="1002")

    assert response.headers["Location"] == "/me"
    assert "already connected to another Ownstory account" in flashed(other)
    [grant] = stored_grants(app, network="demo", account_id="1002")
    assert grant.user_id == person.id


def test_a_wrong_state_is_refused_and_nothing_is_exchanged(app, client, csrf_post, person, demo_state):
    back = answer_at_network(start_connect(client, csrf_post).headers["Location"])
    exchanged = demo_state.calls["token"]

    response = client.get(local_path(back).replace("state=", "state=forged"))

    assert response.status_code == 400
    assert "did not start here" in response.get_data(as_text=True)
    assert demo_state.calls["token"] == exchanged
    assert stored_grants(app) == []
    # The attempt is used up: even the right state no longer works.
    assert client.get(local_path(back)).status_code == 400


def test_a_callback_that_never_started_is_refused(client, person):
    response = client.get("/networks/demo/callback?code=abc&state=xyz")
    assert response.status_code == 400


def test_a_callback_is_single_use(client, csrf_post, person):
    back = answer_at_network(start_connect(client, csrf_post).headers["Location"])
    assert client.get(local_path(back)).status_code == 302
    assert client.get(local_path(back)).status_code == 400


def test_a_wrong_pkce_verifier_fails_the_exchange(app, client, csrf_post, person, demo_state):
    back = answer_at_network(start_connect(client, csrf_post).headers["Location"])
    with client.session_transaction() as cookie:
        pending = cookie[PENDING]
        pending["demo"]["verifier"] = "x" * 64
        cookie[PENDING] = pending
    exchanged = demo_state.calls["token"]

    response = client.get(local_path(back))

    assert response.status_code == 302 and response.headers["Location"] == "/me"
    assert demo_state.calls["token"] == exchanged + 1  # asked, and refused
    assert "did not accept this connection attempt. Nothing was changed." in flashed(client)
    assert stored_grants(app) == []


def test_denying_at_the_network_changes_nothing(app, client, csrf_post, person):
    back = answer_at_network(start_connect(client, csrf_post).headers["Location"], decision="deny")
    assert query(back)["error"] == "access_denied"

    response = client.get(local_path(back))

    assert response.headers["Location"] == "/me"
    assert "You chose not to connect Demo Social. Nothing was changed." in flashed(client)
    assert stored_grants(app) == []


def test_a_network_that_is_down_is_a_friendly_message(app, client, csrf_post, person, demo_network):
    back = answer_at_network(start_connect(client, csrf_post).headers["Location"])
    demo_network.stop()

    response = client.get(local_path(back))

    assert response.status_code == 302 and response.headers["Location"] == "/me"
    assert "Demo Social could not be reached; nothing was changed" in flashed(client)
    assert stored_grants(app) == []


def test_a_network_that_hangs_times_out(app, client, csrf_post, person, demo_state):
    back = answer_at_network(start_connect(client, csrf_post).headers["Location"])
    demo_state.faults.set("token", delay=1.5, times=1)
    # Only the slow call waits so little: a healthy answer on a busy machine can take longer than 0.3 s.
    app.extensions["network_http"] = NetworkHttp(timeout=(1, 0.3))

    response = client.get(local_path(back))

    assert response.headers["Location"] == "/me"
    assert "Demo Social could not be reached; nothing was changed" in flashed(client)
    assert stored_grants(app) == []


@pytest.mark.parametrize("endpoint, status", [("token", 500), ("userinfo", 500), ("userinfo", 401)])
def test_an_error_answer_changes_nothing(app, client, csrf_post, person, demo_state, endpoint, status):
    back = answer_at_network(start_connect(client, csrf_post).headers["Location"])
    demo_state.faults.set(endpoint, status=status, times=1)

    response = client.get(local_path(back))

    assert response.headers["Location"] == "/me"
    page = flashed(client)
    assert "Nothing was changed" in page or "nothing was changed" in page
    assert stored_grants(app) == []


def test_userinfo_without_the_account_id_field(make_app, make_person, login, csrf_post, demo_network, tmp_path):
    catalogue = tmp_path / "no-id.toml"
    shipped = networks_toml(demo_network.url)
    catalogue.write_text(shipped.replace('account_id_field = "sub"', 'account_id_field = "uid"'))
    app = make_app(networks=catalogue)
    client = app.test_client()
    login(client, make_person())

    response = connect_through_demo(client, csrf_post)

    assert response.headers["Location"] == "/me"
    assert "did not tell us which account you connected; nothing was changed" in flashed(client)
    assert stored_grants(app) == []


def test_unknown_networks_are_not_found(client, csrf_post, person):
    assert start_connect(client, csrf_post, key="myspace").status_code == 404
    page = client.get("/networks/myspace/callback?code=a&state=b")
    assert page.status_code == 404 and "no network by that name" in page.get_data(as_text=True)


def test_connect_needs_a_signed_in_person_and_a_csrf_token(client, csrf_post, make_person, login, app):
    anonymous = csrf_post(client, "/networks/demo/connect", page="/login")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    login(client, make_person())
    assert client.post("/networks/demo/connect").status_code == 400  # no CSRF token
    staff = app.test_client()
    login(staff, make_person(role="operator"))
    assert start_connect(staff, csrf_post, key="demo").status_code == 403


def test_tokens_are_never_stored_in_plain_text(app, client, csrf_post, person, vault):
    connect_through_demo(client, csrf_post)
    [grant] = stored_grants(app)
    secrets = [vault.open(grant.access_token).encode(), vault.open(grant.refresh_token).encode()]

    engine = app.extensions["ownstory_db"]["engine"]
    with engine.connect() as conn:
        for column in conn.execute(text("SELECT access_token, refresh_token FROM grants")).one():
            assert all(secret not in bytes(column) for secret in secrets)
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        files = [Path(url.removeprefix("sqlite:///") + suffix) for suffix in ("", "-wal")]
        stored = b"".join(f.read_bytes() for f in files if f.exists())
        assert grant.access_token in stored  # the sealed form is there, so we read the right file
        assert all(secret not in stored for secret in secrets)


def test_no_code_token_or_secret_reaches_a_log_or_a_page(app, client, csrf_post, person, caplog, vault):
    # Ownstory's own loggers and the HTTP client at DEBUG; the rest at the level a deployment runs.
    # (Authlib's server inside Demo Social logs issued tokens at DEBUG: that is the toy provider.)
    caplog.set_level(logging.INFO)
    for name in ("app", "consent", "urllib3", "werkzeug"):
        caplog.set_level(logging.DEBUG, logger=name)
    started = start_connect(client, csrf_post)
    back = answer_at_network(started.headers["Location"])
    pages = [client.get(local_path(back)).get_data(as_text=True), flashed(client)]
    [grant] = stored_grants(app)

    secrets = [query(back)["code"], vault.open(grant.access_token), vault.open(grant.refresh_token), DEMO_CLIENT_SECRET]
    for secret in secrets:
        assert secret not in caplog.text
        assert all(secret not in page for page in pages)


def test_access_log_lines_have_codes_redacted():
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '"%s" %s %s',
                               ("GET /networks/demo/callback?code=s3cret&state=abc HTTP/1.1", "302", "-"), None)
    RedactOAuthParams().filter(record)
    assert "s3cret" not in record.getMessage() and "abc" not in record.getMessage()
    assert "/networks/demo/callback?code=[redacted]&state=[redacted]" in record.getMessage()
