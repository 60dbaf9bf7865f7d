"""RFC 8707 resource indicators from a catalogue entry's authorize_params and token_params, against a Demo Social
that binds its tokens to the resource asked for (DEMO_RESOURCES): connecting, then refreshing."""
from __future__ import annotations

import datetime as dt

import requests
from flask import request

from app.db import utcnow
from app.extensions import db
from consent.grants import access_token
from consent.oauth import NetworkHttp
from tests.consent.helpers_connect import answer_at_network, flashed, local_path, start_connect, stored_grants
from tests.consent.test_issuer import demo_social, entry
from tests.helpers_live_tokens import introspected

API, FILES = "https://api.demo.example", "https://files.demo.example"
BOUND = {"authorize_params": f'{{ resource = "{API}" }}', "token_params": f'{{ resource = "{API}" }}'}


def test_tokens_are_bound_to_the_resource_and_refreshing_asks_for_it_again(person_at, csrf_post, vault):
    with demo_social(DEMO_RESOURCES=[API, FILES]) as server:
        refreshes: list[dict] = []
        server.app.before_request(lambda: refreshes.append(dict(request.form))
                                  if request.form.get("grant_type") == "refresh_token" else None)
        app, client = person_at(entry("demo", server, **BOUND))
        back = client.get(local_path(answer_at_network(start_connect(client, csrf_post).headers["Location"])))
        assert back.headers["Location"] == "/consents"
        [grant] = stored_grants(app)
        assert introspected(server, vault.open(grant.access_token))["aud"] == API
        assert introspected(server, vault.open(grant.refresh_token))["aud"] == API

        network = app.extensions["networks"]["demo"]
        with app.app_context():
            grant = db.session.merge(grant)
            fresh = access_token(db.session, vault, grant, network, utcnow() + dt.timedelta(hours=2), NetworkHttp())
            db.session.commit()

        assert [form.get("resource") for form in refreshes] == [API]  # token_params reach the refresh too
        answer = introspected(server, fresh)
        assert answer["active"] and answer["aud"] == API


def test_a_resource_the_network_does_not_serve_is_refused_at_the_network(person_at, csrf_post):
    with demo_social(DEMO_RESOURCES=[FILES]) as server:
        # A network that always names itself does so on a refusal too, so the refusal is heard as its own.
        app, client = person_at(entry("demo", server, authorization_response_iss_parameter_supported="true", **BOUND))
        back = answer_at_network_refusing(start_connect(client, csrf_post).headers["Location"])
        assert "error=invalid_target" in back

        assert client.get(local_path(back)).headers["Location"] == "/me"
        assert "Demo did not let the connection go ahead. Nothing was changed." in flashed(client)
        assert server.app.extensions["demo"].calls["token"] == 0
    assert stored_grants(app) == []


def answer_at_network_refusing(authorize_url: str) -> str:
    """Where a network that refuses the request at once (no sign-in page) sends the browser back."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]
