"""Demo Social's strict behaviours (demo/strict.py), each switched on alone, over real HTTP."""

from __future__ import annotations

import requests
from authlib.common.security import generate_token

from demo.server import create_demo_app
from tests.demo.test_server import BASIC, CALLBACK, consent, demo_config, oauth_session, redirect_params
from tests.helpers_servers import serve


def authorize(server, **params) -> dict[str, str]:
    """Allow at the sign-in page; the parameters Demo Social sent back, and the verifier to redeem the code."""
    oauth = oauth_session()
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(server.url + "/oauth/authorize", code_verifier=verifier, **params)
    return {**redirect_params(consent(server.url, url)), "verifier": verifier}


def redeem(server, answer: dict[str, str], **params) -> dict:
    return dict(oauth_session().fetch_token(server.url + "/oauth/token", code=answer["code"],
                                            code_verifier=answer["verifier"], **params))


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


API, FILES, ELSEWHERE = "https://api.demo.example", "https://files.demo.example", "https://elsewhere.example"


def introspect(server, token: str) -> dict:
    answer = requests.post(server.url + "/oauth/introspect", data={"token": token},
                           auth=(BASIC["client_id"], BASIC["client_secret"]), timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def refresh(server, token: dict, **params) -> requests.Response:
    return requests.post(server.url + "/oauth/token", data={"grant_type": "refresh_token",
                                                            "refresh_token": token["refresh_token"], **params},
                         auth=(BASIC["client_id"], BASIC["client_secret"]), timeout=5)


def test_tokens_are_bound_to_the_resource_asked_for():
    with serve(create_demo_app(demo_config(DEMO_RESOURCES=[API, FILES]))) as server:
        token = redeem(server, authorize(server, resource=API), resource=API)
        assert introspect(server, token["access_token"])["aud"] == API
        assert introspect(server, token["refresh_token"])["aud"] == API

        again = refresh(server, token, resource=API)
        assert again.status_code == 200, again.text
        assert introspect(server, again.json()["access_token"])["aud"] == API
        # A refresh cannot reach a resource the authorization did not name, even one the server serves.
        assert refresh(server, token, resource=FILES).json()["error"] == "invalid_target"


def test_a_resource_the_server_does_not_serve_is_refused():
    with serve(create_demo_app(demo_config(DEMO_RESOURCES=[API]))) as server:
        oauth = oauth_session()
        url, _ = oauth.create_authorization_url(server.url + "/oauth/authorize", code_verifier=generate_token(64),
                                                resource=ELSEWHERE)
        answer = requests.get(url, allow_redirects=False, timeout=5)
        assert answer.status_code == 302 and redirect_params(answer)["error"] == "invalid_target"

        refused = requests.post(server.url + "/oauth/token", auth=(BASIC["client_id"], BASIC["client_secret"]),
                                data={"grant_type": "authorization_code", **_code_form(authorize(server)),
                                      "resource": ELSEWHERE}, timeout=5)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"


def test_without_served_resources_resource_is_ignored():
    with serve(create_demo_app(demo_config())) as server:
        token = redeem(server, authorize(server, resource=ELSEWHERE), resource=ELSEWHERE)
        assert "aud" not in introspect(server, token["access_token"])


def _code_form(answer: dict[str, str]) -> dict[str, str]:
    return {"code": answer["code"], "code_verifier": answer["verifier"], "redirect_uri": CALLBACK}


def test_a_refused_request_names_the_issuer_too():
    with serve(create_demo_app(demo_config(DEMO_ISSUE_ISS=True, DEMO_RESOURCES=[API]))) as server:
        url, _ = oauth_session().create_authorization_url(server.url + "/oauth/authorize",
                                                          code_verifier=generate_token(64), resource=ELSEWHERE)
        answer = redirect_params(requests.get(url, allow_redirects=False, timeout=5))
        assert (answer["error"], answer["iss"]) == ("invalid_target", server.url)


def test_a_code_refused_for_another_resource_stays_bound_to_its_own():
    with serve(create_demo_app(demo_config(DEMO_RESOURCES=[API, FILES]))) as server:
        answer = authorize(server, resource=API)
        refused = requests.post(server.url + "/oauth/token", auth=(BASIC["client_id"], BASIC["client_secret"]),
                                data={"grant_type": "authorization_code", **_code_form(answer), "resource": FILES},
                                timeout=5)
        assert refused.json()["error"] == "invalid_target"
        assert introspect(server, redeem(server, answer)["access_token"])["aud"] == API
