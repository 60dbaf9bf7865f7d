"""Discovery: an entry that names its issuer reads the endpoints from the provider's metadata at start-up."""
from __future__ import annotations

import json
import socket
import time

import pytest

from app.settings import ConfigError
from consent.networks import load_networks
from demo.server import create_demo_app
from tests.consent.test_networks import BASE, SECRET, acme, toml
from tests.helpers_servers import serve

QUICK = (1, 1)


@pytest.fixture(scope="module")
def provider():
    """Demo Social as a certified provider: it publishes metadata and sends iss."""
    server = serve(create_demo_app({"DEMO_ISSUE_ISS": True}))
    yield server
    server.stop()


def discovered(**fields) -> dict:
    return {"name": "Provider", "client_id": "ownstory", "client_secret": SECRET, **fields}


def load(tmp_path, entries: dict):
    path = tmp_path / "networks.toml"
    path.write_text(toml(entries))
    return load_networks(path, BASE, environ={}, timeout=QUICK)


def fails(tmp_path, entries: dict) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, entries)
    assert str(err.value).startswith(f"{tmp_path / 'networks.toml'}: networks.provider.")
    assert "\n" not in str(err.value) and SECRET not in str(err.value)
    return err.value


def serve_json(body, content_type: str = "application/json"):
    """A provider whose metadata URL answers `body` (any path)."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", content_type)])
        return [body.encode() if isinstance(body, str) else json.dumps(body).encode()]
    return serve(app)


def test_four_lines_and_an_issuer_are_enough(tmp_path, provider):
    network = load(tmp_path, {"provider": discovered(issuer=provider.url)})["provider"]

    assert network.issuer == provider.url and network.iss_required
    assert network.authorize_url == provider.url + "/oauth/authorize"
    assert network.token_url == provider.url + "/oauth/token"
    assert network.userinfo_url == provider.url + "/userinfo"
    assert network.introspection_url == provider.url + "/oauth/introspect"
    assert (network.revocation.style, network.revocation.url) == ("rfc7009", provider.url + "/oauth/revoke")
    assert network.token_endpoint_auth == "client_secret_basic"
    assert (network.account_id_field, network.handle_field, network.scopes) == (
        "sub", "preferred_username", ("openid", "profile"))


def test_a_discovery_url_gives_the_issuer_too(tmp_path, provider):
    url = provider.url + "/.well-known/oauth-authorization-server"
    network = load(tmp_path, {"provider": discovered(discovery_url=url)})["provider"]
    assert network.issuer == provider.url and network.token_url == provider.url + "/oauth/token"


def test_hand_typed_fields_win_over_discovered_ones(tmp_path, provider):
    entry = discovered(issuer=provider.url, userinfo_url="https://api.example/me", scopes=["profile"],
                       token_endpoint_auth="client_secret_post", authorization_response_iss_parameter_supported=False,
                       revocation={"style": "rfc7009"})
    network = load(tmp_path, {"provider": entry})["provider"]
    assert network.userinfo_url == "https://api.example/me" and network.scopes == ("profile",)
    assert network.token_endpoint_auth == "client_secret_post" and not network.iss_required
    assert network.token_url == provider.url + "/oauth/token"
    assert network.revocation.url == provider.url + "/oauth/revoke"  # the style typed, the URL discovered


def test_a_fully_hand_typed_entry_with_an_issuer_reads_nothing(tmp_path):
    # Nothing listens on this issuer: were it read, loading would fail.
    network = load(tmp_path, {"provider": acme(issuer="http://127.0.0.1:9")})["provider"]
    assert network.issuer == "http://127.0.0.1:9"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_issuer_fails_fast_naming_the_entry(tmp_path):
    started = time.monotonic()
    err = fails(tmp_path, {"provider": discovered(issuer=f"http://127.0.0.1:{closed_port()}")})
    assert err.field == "networks.provider.issuer" and "could not be reached" in err.problem
    assert time.monotonic() - started < 5


def test_a_provider_that_hangs_times_out(tmp_path):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        err = fails(tmp_path, {"provider": discovered(issuer=f"http://127.0.0.1:{silent.getsockname()[1]}")})
    assert "did not answer within" in err.problem
    assert time.monotonic() - started < 5


def test_metadata_that_is_not_json(tmp_path):
    with serve_json("<html>hello</html>", "text/html") as server:
        err = fails(tmp_path, {"provider": discovered(issuer=server.url)})
    assert "did not answer JSON" in err.problem


def test_metadata_naming_another_issuer(tmp_path):
    with serve(create_demo_app({"DEMO_ISSUER": "https://elsewhere.example"})) as server:
        err = fails(tmp_path, {"provider": discovered(issuer=server.url)})
    assert "https://elsewhere.example" in err.problem and "not" in err.problem


@pytest.mark.parametrize("methods", [["plain"], None])
def test_a_provider_without_s256(tmp_path, methods):
    document = {"issuer": "https://p.example", "authorization_endpoint": "https://p.example/a",
                "token_endpoint": "https://p.example/t", "userinfo_endpoint": "https://p.example/u",
                "revocation_endpoint": "https://p.example/r"}
    if methods is not None:
        document["code_challenge_methods_supported"] = methods
    with serve_json(document) as server:
        err = fails(tmp_path, {"provider": discovered(discovery_url=server.url + "/metadata")})
    assert err.field == "networks.provider.discovery_url" and "S256" in err.problem


def test_the_app_will_not_start_when_discovery_fails(make_app, tmp_path):
    path = tmp_path / "unreachable.toml"
    path.write_text(toml({"provider": discovered(issuer=f"http://127.0.0.1:{closed_port()}")}))
    with pytest.raises(ConfigError) as err:
        make_app(networks=path)
    assert str(err.value).startswith(f"{path}: networks.provider.issuer: discovery failed: ")
