"""Demo Social's strict behaviours (demo/strict.py), each switched on alone, over real HTTP."""

from __future__ import annotations

import requests
from authlib.common.security import generate_token

from demo.server import create_demo_app
from tests.demo.test_server import consent, demo_config, oauth_session, redirect_params
from tests.helpers_servers import serve


def authorize(server, **params) -> dict[str, str]:
    """Allow at the sign-in page; the parameters Demo Social sent back, and the verifier to redeem the code."""
    oauth = oauth_session()
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(server.url + "/oauth/authorize", code_verifier=verifier, **params)
    return {**redirect_params(consent(server.url, url)), "verifier": verifier}


def redeem(server, answer: dict[str, str]) -> dict:
    return dict(oauth_session().fetch_token(server.url + "/oauth/token", code=answer["code"],
                                            code_verifier=answer["verifier"]))


def test_iss_names_the_issuer_only_when_asked():
    with serve(create_demo_app(demo_config(DEMO_ISSUE_ISS=True))) as strict, \
            serve(create_demo_app(demo_config())) as plain:
        assert authorize(strict)["iss"] == strict.url
        assert "iss" not in authorize(plain)


def test_iss_can_name_another_issuer_for_a_mix_up():
    with serve(create_demo_app(demo_config(DEMO_ISSUE_ISS=True, DEMO_ISSUER="https://other.example"))) as server:
        assert authorize(server)["iss"] == "https://other.example"


def test_metadata_at_both_well_known_paths_and_off_on_request():
    with serve(create_demo_app(demo_config(DEMO_ISSUE_ISS=True))) as server, \
            serve(create_demo_app(demo_config(DEMO_DISCOVERY=False))) as hidden:
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            document = requests.get(server.url + path, timeout=5).json()
            assert document["issuer"] == server.url
            assert document["token_endpoint"] == server.url + "/oauth/token"
            assert document["authorization_response_iss_parameter_supported"] is True
            assert requests.get(hidden.url + path, timeout=5).status_code == 404


def test_no_refresh_token_without_prompt_consent():
    with serve(create_demo_app(demo_config(DEMO_OFFLINE_NEEDS_CONSENT_PROMPT=True))) as server:
        assert "refresh_token" not in redeem(server, authorize(server))
        assert redeem(server, authorize(server, prompt="consent"))["refresh_token"]
