"""RFC 9207 and extra parameters in the shared OAuth flow (consent/account_control.py), for connecting and
/forget alike: two Demo Social servers on loopback play two configured networks."""
from __future__ import annotations

import pytest
from flask import request

from demo.server import create_demo_app
from tests.conftest import BASE_URL, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.consent.helpers_connect import answer_at_network, local_path, query, start_connect, stored_grants
from tests.helpers_servers import serve

KEYS = ("demo", "beta")  # the data map names demo
CALLBACKS = [f"{BASE_URL}{where}/{key}/callback" for where in ("/networks", "/forget/networks") for key in KEYS]
NOT_FROM = "did not come from {name}, so it was not used and nothing was changed"


def demo_social(**config):
    """A strict Demo Social that sends iss, serving the same client for every callback here."""
    client = {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET, "redirect_uris": CALLBACKS,
              "scope": "profile posts", "token_endpoint_auth_method": "client_secret_basic"}
    return serve(create_demo_app({"DEMO_CLIENTS": [client], "DEMO_ISSUE_ISS": True, **config}))


@pytest.fixture(scope="module")
def alpha():
    with demo_social() as server:
        yield server


@pytest.fixture(scope="module")
def beta():
    with demo_social() as server:
        yield server


def entry(key: str, server, **extra: str) -> str:
    """A hand-typed catalogue entry with the server's issuer; `extra` lines are TOML as given."""
    lines = "\n".join(f"{name} = {value}" for name, value in extra.items())
    return f"""
[networks.{key}]
name = "{key.title()}"
issuer = "{server.url}"
authorize_url = "{server.url}/oauth/authorize"
token_url = "{server.url}/oauth/token"
userinfo_url = "{server.url}/userinfo"
account_id_field = "sub"
handle_field = "preferred_username"
scopes = ["profile", "posts"]
client_id = "{DEMO_CLIENT_ID}"
client_secret = "{DEMO_CLIENT_SECRET}"
token_endpoint_auth = "client_secret_basic"
{lines}

[networks.{key}.revocation]
style = "rfc7009"
url = "{server.url}/oauth/revoke"
"""


def tokens_issued(*servers) -> list[int]:
    return [server.app.extensions["demo"].calls["token"] for server in servers]


def mixed_up(authorize_url: str, honest, other) -> str:
    """The browser sent to `honest` lands at `other` (the mix-up attack), which answers to the same callback."""
    assert authorize_url.startswith(honest.url + "/")
    return answer_at_network(other.url + authorize_url[len(honest.url):])


def test_a_connect_answered_by_another_network_is_refused_before_the_exchange(person_at, csrf_post, alpha, beta):
    app, client = person_at(entry("demo", alpha) + entry("beta", beta))
    before = tokens_issued(alpha, beta)
    back = mixed_up(start_connect(client, csrf_post, "demo").headers["Location"], alpha, beta)
    assert query(back)["iss"] == beta.url

    answer = client.get(local_path(back))

    assert answer.status_code == 400
    assert NOT_FROM.format(name="Demo") in answer.get_data(as_text=True)
    assert tokens_issued(alpha, beta) == before  # the code was never redeemed, at either network
    assert stored_grants(app) == []


def test_a_forget_answered_by_another_network_is_refused(person_at, csrf_post, alpha, beta):
    app, client = person_at(entry("demo", alpha) + entry("beta", beta))
    before = tokens_issued(alpha, beta)
    started = csrf_post(client, "/forget/networks/beta", page="/forget")
    back = mixed_up(started.headers["Location"], beta, alpha)

    answer = client.get(local_path(back))

    assert answer.status_code == 400
    assert NOT_FROM.format(name="Beta") in answer.get_data(as_text=True)
    assert tokens_issued(alpha, beta) == before
    with client.session_transaction() as sess:
        assert not any(key.startswith("forget_proof") for key in sess)


def test_the_right_issuer_connects(person_at, csrf_post, alpha, beta):
    app, client = person_at(entry("demo", alpha) + entry("beta", beta))
    back = answer_at_network(start_connect(client, csrf_post, "beta").headers["Location"])
    assert client.get(local_path(back)).headers["Location"] == "/consents"
    [grant] = stored_grants(app)
    assert grant.network == "beta"


def test_a_network_that_always_sends_iss_must_have_sent_it(person_at, csrf_post):
    with demo_social(DEMO_ISSUE_ISS=False) as quiet:
        app, client = person_at(entry("demo", quiet, authorization_response_iss_parameter_supported="true"))
        back = answer_at_network(start_connect(client, csrf_post, "demo").headers["Location"])
        assert "iss" not in query(back)

        answer = client.get(local_path(back))

        assert answer.status_code == 400 and NOT_FROM.format(name="Demo") in answer.get_data(as_text=True)
        assert tokens_issued(quiet) == [0]
    assert stored_grants(app) == []


def test_without_iss_a_network_that_does_not_promise_it_still_connects(person_at, csrf_post):
    with demo_social(DEMO_ISSUE_ISS=False) as quiet:
        app, client = person_at(entry("demo", quiet))
        back = answer_at_network(start_connect(client, csrf_post, "demo").headers["Location"])
        assert client.get(local_path(back)).headers["Location"] == "/consents"
    assert len(stored_grants(app)) == 1


@pytest.mark.parametrize("params, refreshable", [("{}", False), ('{ prompt = "consent" }', True)])
def test_authorize_params_reach_the_network(person_at, csrf_post, vault, params, refreshable):
    """The certified provider's quirk: no refresh token unless the authorization request said prompt=consent."""
    with demo_social(DEMO_OFFLINE_NEEDS_CONSENT_PROMPT=True) as strict:
        app, client = person_at(entry("demo", strict, authorize_params=params))
        url = start_connect(client, csrf_post, "demo").headers["Location"]
        assert ("prompt" in query(url)) is refreshable
        client.get(local_path(answer_at_network(url)))
    [grant] = stored_grants(app)
    assert bool(vault.open(grant.refresh_token)) is refreshable


def test_token_params_reach_the_token_endpoint(person_at, csrf_post):
    with demo_social() as server:
        sent: list[dict] = []
        server.app.before_request(lambda: sent.append(dict(request.form)) if request.path == "/oauth/token" else None)
        app, client = person_at(entry("demo", server, token_params='{ resource = "https://api.example" }'))
        client.get(local_path(answer_at_network(start_connect(client, csrf_post, "demo").headers["Location"])))
    assert len(stored_grants(app)) == 1
    assert [form.get("resource") for form in sent] == ["https://api.example"]
