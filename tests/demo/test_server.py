"""Demo Social over real HTTP on a loopback port, driven by Authlib's OAuth2Session as a client."""

from __future__ import annotations

import html
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from sqlalchemy import update
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from demo.accounts import DEMO_ACCOUNTS
from demo.models import Token
from demo.server import create_demo_app
from tests.helpers_servers import LiveServer, serve

CALLBACK = "http://127.0.0.1:5000/networks/demo/callback"
TTL = 900
POSTS = 4
BASIC = {"client_id": "basic-app", "client_secret": "basic-secret", "token_endpoint_auth_method": "client_secret_basic"}
POST = {"client_id": "post-app", "client_secret": "post-secret", "token_endpoint_auth_method": "client_secret_post"}


def demo_config(**overrides) -> dict:
    clients = [{**c, "redirect_uris": [CALLBACK], "scope": "profile posts"} for c in (BASIC, POST)]
    return {"DEMO_CLIENTS": clients, "DEMO_ACCESS_TOKEN_TTL": TTL, "DEMO_POSTS_PER_ACCOUNT": POSTS, **overrides}


@pytest.fixture(scope="module")
def demo():
    server = serve(create_demo_app(demo_config()))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_hooks(request):
    if "demo" in request.fixturenames:
        state = request.getfixturevalue("demo").app.extensions["demo"]
        state.faults.clear()
        state.calls.reset()
    yield


def oauth_session(client: dict = BASIC, scope: str = "profile posts") -> OAuth2Session:
    return OAuth2Session(
        client["client_id"],
        client["client_secret"],
        scope=scope,
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method=client["token_endpoint_auth_method"],
    )


def consent(base: str, authorize_url: str, decision: str = "allow", account: str | None = None) -> requests.Response:
    """Do what a person does on the sign-in page: load it, pick an account, press a button."""
    browser = requests.Session()
    page = browser.get(authorize_url)
    assert page.status_code == 200, page.text
    form = {"csrf_token": _field(page.text, "csrf_token"), "decision": decision}
    form["account"] = account or re.search(r'name="account" value="(\d+)" checked', page.text).group(1)
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    return browser.post(urljoin(base, action), data=form, allow_redirects=False)


def _field(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', page).group(1)


def redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def connect(base: str, client: dict = BASIC, account: str | None = None) -> tuple[OAuth2Session, dict]:
    oauth = oauth_session(client)
    verifier = secrets.token_urlsafe(48)
    url, _state = oauth.create_authorization_url(f"{base}/oauth/authorize", code_verifier=verifier)
    location = consent(base, url, account=account).headers["Location"]
    token = oauth.fetch_token(f"{base}/oauth/token", authorization_response=location, code_verifier=verifier)
    return oauth, token


def client_post(url: str, client: dict, form: dict) -> requests.Response:
    """POST form authenticated the way this client is registered to authenticate."""
    credentials = (client["client_id"], client["client_secret"])
    if client["token_endpoint_auth_method"] == "client_secret_basic":
        return requests.post(url, data=form, auth=credentials)
    return requests.post(url, data={**form, "client_id": credentials[0], "client_secret": credentials[1]})


def introspect(base: str, token: str, client: dict = BASIC, **form) -> dict:
    response = client_post(f"{base}/oauth/introspect", client, {"token": token, **form})
    assert response.status_code == 200, response.text
    return response.json()


def revoke(base: str, token: str, client: dict = BASIC, **form) -> requests.Response:
    return client_post(f"{base}/oauth/revoke", client, {"token": token, **form})


# --- the sign-in page ------------------------------------------------------------------------


def test_sign_in_page_lists_accounts_scopes_and_both_choices(demo):
    url, _ = oauth_session().create_authorization_url(f"{demo.url}/oauth/authorize", code_verifier="v" * 43)
    page = requests.get(url)
    assert page.status_code == 200
    assert "<h1>Sign in to Demo Social</h1>" in page.text
    for account in DEMO_ACCOUNTS:
        assert f'<label for="account-{account.account_id}">' in page.text
        assert f"@{account.handle}" in page.text
    assert re.search(r'value="1001" checked', page.text), "the first account is preselected"
    assert "<strong>profile</strong>" in page.text and "<strong>posts</strong>" in page.text
    assert 'value="allow">Allow</button>' in page.text and 'value="deny">Deny</button>' in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "demo_social_session" in page.cookies  # never the main app's "session" cookie


def test_full_flow_gives_userinfo_and_posts_for_the_chosen_account(demo):
    oauth = oauth_session()
    verifier = secrets.token_urlsafe(48)
    url, state = oauth.create_authorization_url(f"{demo.url}/oauth/authorize", code_verifier=verifier)
    params = redirect_params(consent(demo.url, url, account="1003"))
    assert params["state"] == state

    token = oauth.fetch_token(f"{demo.url}/oauth/token", code=params["code"], code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["expires_in"] == TTL
    assert token["refresh_token"] and token["scope"] == "profile posts"

    assert oauth.get(f"{demo.url}/userinfo").json() == {"sub": "1003", "preferred_username": "mei", "name": "Mei Chen"}
    posts = oauth.get(f"{demo.url}/api/posts").json()
    assert posts["account_id"] == "1003" and len(posts["posts"]) == POSTS
    assert all("@mei" in p["body"] for p in posts["posts"])


def test_client_secret_post_clients_authenticate_in_the_form_only(demo):
    oauth, token = connect(demo.url, client=POST)
    assert oauth.get(f"{demo.url}/userinfo").status_code == 200
    # The same credentials in a Basic header are not this client's registered method.
    answer = requests.post(
        f"{demo.url}/oauth/introspect", data={"token": token["access_token"]}, auth=("post-app", "post-secret")
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert introspect(demo.url, token["access_token"], client=POST)["active"] is True


def test_posts_need_the_posts_scope(demo):
    oauth = oauth_session(scope="profile")
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(f"{demo.url}/oauth/authorize", code_verifier=verifier)
    oauth.fetch_token(
        f"{demo.url}/oauth/token",
        authorization_response=consent(demo.url, url).headers["Location"],
        code_verifier=verifier,
    )
    assert oauth.get(f"{demo.url}/userinfo").status_code == 200
    answer = oauth.get(f"{demo.url}/api/posts")
    assert answer.status_code == 403 and answer.json()["error"] == "insufficient_scope"


def test_missing_or_bad_bearer_token_is_401(demo):
    assert requests.get(f"{demo.url}/userinfo").status_code == 401
    answer = requests.get(f"{demo.url}/userinfo", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"


# --- tokens: refresh, expiry, revocation, introspection ---------------------------------------


def test_refresh_keeps_the_refresh_token_and_replaces_the_access_token(demo):
    oauth, first = connect(demo.url)
    second = oauth.refresh_token(f"{demo.url}/oauth/token")
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] == first["refresh_token"]
    assert oauth.get(f"{demo.url}/userinfo").status_code == 200
    old = requests.get(f"{demo.url}/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert old.status_code == 401
    assert introspect(demo.url, first["access_token"]) == {"active": False}


def test_introspection_describes_a_live_token(demo):
    _, token = connect(demo.url, account="1002")
    answer = introspect(demo.url, token["access_token"])
    assert answer["active"] is True
    assert answer["scope"] == "profile posts" and answer["client_id"] == "basic-app"
    assert answer["sub"] == "1002" and answer["username"] == "omar"
    assert abs(answer["exp"] - (time.time() + TTL)) < 30
    refresh = introspect(demo.url, token["refresh_token"], token_type_hint="refresh_token")
    assert refresh["active"] is True and refresh["sub"] == "1002"


def test_introspection_is_inactive_for_unknown_expired_and_other_clients_tokens(demo):
    assert introspect(demo.url, "no-such-token") == {"active": False}
    _, token = connect(demo.url)
    assert introspect(demo.url, token["access_token"], client=POST) == {"active": False}

    state = demo.app.extensions["demo"]
    with state.sessions.begin() as db:  # move the clock of this token past its lifetime
        db.execute(
            update(Token).where(Token.access_token == token["access_token"]).values(issued_at=Token.issued_at - TTL)
        )
    assert introspect(demo.url, token["access_token"]) == {"active": False}
    assert (
        requests.get(f"{demo.url}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}).status_code
        == 401
    )
    assert introspect(demo.url, token["refresh_token"])["active"] is True, "refresh tokens outlive access tokens"


def test_revoking_the_refresh_token_revokes_its_access_token_too(demo):
    oauth, token = connect(demo.url)
    answer = oauth.revoke_token(
        f"{demo.url}/oauth/revoke", token=token["refresh_token"], token_type_hint="refresh_token"
    )
    assert answer.status_code == 200
    assert introspect(demo.url, token["refresh_token"]) == {"active": False}
    assert introspect(demo.url, token["access_token"]) == {"active": False}
    assert oauth.get(f"{demo.url}/userinfo").status_code == 401
    with pytest.raises(OAuthError) as refused:
        oauth.refresh_token(f"{demo.url}/oauth/token")
    assert refused.value.error == "invalid_grant"


def test_revoking_only_the_access_token_leaves_the_refresh_token(demo):
    oauth, token = connect(demo.url)
    assert revoke(demo.url, token["access_token"], token_type_hint="access_token").status_code == 200
    assert introspect(demo.url, token["access_token"]) == {"active": False}
    fresh = oauth.refresh_token(f"{demo.url}/oauth/token")
    assert introspect(demo.url, fresh["access_token"])["active"] is True


def test_revocation_follows_rfc7009_for_odd_cases(demo):
    assert revoke(demo.url, "never-issued").status_code == 200
    _, token = connect(demo.url)
    # A wrong hint only changes the search order.
    assert revoke(demo.url, token["refresh_token"], token_type_hint="access_token").status_code == 200
    assert introspect(demo.url, token["access_token"]) == {"active": False}
    assert revoke(demo.url, token["refresh_token"]).status_code == 200, "revoking twice is still 200"
    assert revoke(demo.url, "x", token_type_hint="id_token").json()["error"] == "unsupported_token_type"


def test_revocation_and_introspection_need_client_authentication(demo):
    _, token = connect(demo.url)
    for path in ("revoke", "introspect"):
        anonymous = requests.post(f"{demo.url}/oauth/{path}", data={"token": token["access_token"]})
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
        wrong = requests.post(
            f"{demo.url}/oauth/{path}", data={"token": token["access_token"]}, auth=("basic-app", "x")
        )
        assert wrong.status_code == 401
    assert introspect(demo.url, token["access_token"])["active"] is True


# --- PKCE, consent and bad requests ------------------------------------------------------------


def test_a_wrong_code_verifier_is_rejected_and_a_code_works_once(demo):
    oauth = oauth_session()
    verifier = secrets.token_urlsafe(48)
    url, _ = oauth.create_authorization_url(f"{demo.url}/oauth/authorize", code_verifier=verifier)
    location = consent(demo.url, url).headers["Location"]
    token_url = f"{demo.url}/oauth/token"
    with pytest.raises(OAuthError) as wrong:
        oauth.fetch_token(token_url, authorization_response=location, code_verifier=secrets.token_urlsafe(48))
    assert wrong.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as missing:
        oauth.fetch_token(token_url, authorization_response=location)
    assert missing.value.error == "invalid_request"
    assert oauth.fetch_token(token_url, authorization_response=location, code_verifier=verifier)["access_token"]
    with pytest.raises(OAuthError) as replay:
        oauth.fetch_token(token_url, authorization_response=location, code_verifier=verifier)
    assert replay.value.error == "invalid_grant"


@pytest.mark.parametrize(
    "pkce",
    [{}, {"code_challenge": "a" * 43, "code_challenge_method": "plain"}, {"code_challenge": "a" * 43}],
    ids=["missing", "plain", "method-omitted"],
)
def test_authorization_without_s256_pkce_is_refused(demo, pkce):
    params = {"response_type": "code", "client_id": "basic-app", "redirect_uri": CALLBACK, "state": "s1", **pkce}
    answer = requests.get(f"{demo.url}/oauth/authorize", params=params, allow_redirects=False)
    error = redirect_params(answer)
    assert error["error"] == "invalid_request" and error["state"] == "s1"


def test_deny_sends_access_denied_with_the_state(demo):
    url, state = oauth_session().create_authorization_url(f"{demo.url}/oauth/authorize", code_verifier="v" * 43)
    params = redirect_params(consent(demo.url, url, decision="deny"))
    assert params["error"] == "access_denied" and params["state"] == state
    assert "code" not in params


def test_the_consent_form_needs_its_csrf_token(demo):
    url, _ = oauth_session().create_authorization_url(f"{demo.url}/oauth/authorize", code_verifier="v" * 43)
    browser = requests.Session()
    browser.get(url)
    for token in ("", "forged", "é"):
        answer = browser.post(
            url, data={"csrf_token": token, "decision": "allow", "account": "1001"}, allow_redirects=False
        )
        assert answer.status_code == 400 and "Location" not in answer.headers


def test_an_unknown_scope_is_reported_to_the_client(demo):
    url, _ = oauth_session(scope="profile admin").create_authorization_url(
        f"{demo.url}/oauth/authorize", code_verifier="v" * 43
    )
    assert redirect_params(requests.get(url, allow_redirects=False))["error"] == "invalid_scope"


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "nobody", "redirect_uri": CALLBACK},
        {"redirect_uri": CALLBACK},
        {"client_id": "basic-app", "redirect_uri": "https://attacker.example/cb"},
        {"client_id": "basic-app", "redirect_uri": 'http://x/"\\é'},
        {"client_id": "basic-app", "redirect_uri": CALLBACK, "response_type": 'tok"en'},
    ],
    ids=["unknown-client", "no-client", "unregistered-redirect", "odd-redirect", "odd-response-type"],
)
def test_bad_authorization_requests_get_a_friendly_400_page_and_no_redirect(demo, params):
    query = {
        "response_type": "code",
        "state": "s",
        "code_challenge": "a" * 43,
        "code_challenge_method": "S256",
        **params,
    }
    for method in ("GET", "POST"):
        answer = requests.request(method, f"{demo.url}/oauth/authorize", params=query, allow_redirects=False)
        assert answer.status_code == 400, answer.text
        assert "Location" not in answer.headers
        assert "text/html" in answer.headers["Content-Type"]
        assert "can't continue" in answer.text


def test_the_token_endpoint_answers_bad_clients_with_oauth_errors(demo):
    form = {"grant_type": "authorization_code", "code": "x", "redirect_uri": CALLBACK, "code_verifier": "v" * 43}
    unknown = requests.post(f"{demo.url}/oauth/token", data=form, auth=("nobody", "x"))
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    odd = requests.post(
        f"{demo.url}/oauth/token", data={**form, "grant_type": 'pass"word'}, auth=("basic-app", "basic-secret")
    )
    assert odd.status_code == 400 and odd.json()["error"] == "unsupported_grant_type"


def test_metadata_names_every_endpoint(demo):
    meta = requests.get(f"{demo.url}/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint"] == f"{demo.url}/oauth/token"
    assert meta["revocation_endpoint"] == f"{demo.url}/oauth/revoke"
    assert meta["code_challenge_methods_supported"] == ["S256"]


def test_parallel_connections_each_get_their_own_account(demo):
    accounts = [a.account_id for a in DEMO_ACCOUNTS] * 2
    with ThreadPoolExecutor(max_workers=len(accounts)) as pool:
        seen = list(
            pool.map(lambda a: connect(demo.url, account=a)[0].get(f"{demo.url}/userinfo").json()["sub"], accounts)
        )
    assert seen == accounts


# --- the test hooks ----------------------------------------------------------------------------


def test_faults_answer_with_the_status_and_retry_after_then_clear(demo):
    state = demo.app.extensions["demo"]
    _, token = connect(demo.url)
    state.faults.set("revoke", status=503, retry_after=2, times=1)
    busy = revoke(demo.url, token["refresh_token"])
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    assert introspect(demo.url, token["access_token"])["active"] is True, "a faulted call changes nothing"
    assert revoke(demo.url, token["refresh_token"]).status_code == 200
    assert state.calls["revoke"] == 2

    state.faults.set("userinfo", status=500)
    assert [requests.get(f"{demo.url}/userinfo").status_code for _ in range(3)] == [500, 500, 500]
    state.faults.clear()
    assert requests.get(f"{demo.url}/userinfo").status_code == 401
    assert state.calls["userinfo"] == 4


def test_a_delay_fault_slows_only_its_endpoint(demo):
    state = demo.app.extensions["demo"]
    state.faults.set("introspect", delay=1.0, times=1)
    started = time.monotonic()
    assert introspect(demo.url, "x") == {"active": False}
    assert time.monotonic() - started >= 1.0
    started = time.monotonic()
    introspect(demo.url, "x")
    assert time.monotonic() - started < 1.0  # the fault was used up: no delay (a busy machine may take a while)
    assert state.calls["introspect"] == 2


# --- deployment shapes -------------------------------------------------------------------------


def test_mounted_under_a_prefix_every_url_keeps_the_prefix():
    def main_app(environ, start_response):
        return Response("main", status=404)(environ, start_response)

    mounted = DispatcherMiddleware(main_app, {"/demo": create_demo_app(demo_config())})
    with serve(mounted) as server:
        base = f"{server.url}/demo"
        oauth, _token = connect(base)
        assert oauth.get(f"{base}/userinfo").json()["sub"] == "1001"
        meta = requests.get(f"{base}/.well-known/oauth-authorization-server").json()
        assert meta["authorization_endpoint"] == f"{base}/oauth/authorize"
        assert requests.get(f"{server.url}/oauth/authorize").status_code == 404


def test_a_file_store_keeps_clients_and_tokens_across_restarts(tmp_path):
    config = demo_config(DEMO_DATABASE_URL=f"sqlite:///{tmp_path}/nested/demo_social.db")
    with serve(create_demo_app(config)) as first:
        _, token = connect(first.url)
    # A new secret in the config replaces the stored one on the next start.
    renamed = [
        {**c, "client_secret": "rotated"} if c["client_id"] == "basic-app" else c for c in config["DEMO_CLIENTS"]
    ]
    with serve(create_demo_app({**config, "DEMO_CLIENTS": renamed})) as second:
        assert introspect(second.url, token["access_token"], client=BASIC | {"client_secret": "rotated"})["active"]
        stale = requests.post(f"{second.url}/oauth/introspect", data={"token": "x"}, auth=("basic-app", "basic-secret"))
        assert stale.status_code == 401


def test_a_live_server_can_go_down_and_come_back_on_the_same_port():
    server = LiveServer(create_demo_app(demo_config())).start()
    url = server.url
    assert requests.get(f"{url}/userinfo").status_code == 401
    server.stop()
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/userinfo", timeout=2)
    server.start()
    assert server.url == url and requests.get(f"{url}/userinfo").status_code == 401
    server.stop()
    server.stop()  # stopping twice is harmless
