"""The worker's sessions to the networks honour the proxy settings it started with, read once."""
from __future__ import annotations

import pytest

from erasure.engine.network_http import NetworkSession, ProxySettings
from erasure.engine.revocation import GrantTokens, revoke
from tests.erasure.engine.test_revocation import QUICK, make_network
from tests.helpers_servers import LiveServer

UNREACHABLE = "http://127.0.0.1:9/revoke"  # nothing listens on the discard port: only a proxy can answer
TOKENS = GrantTokens(access_token="access-token", refresh_token="refresh-token", account_id="acct")


class ForwardProxy:
    """A forward proxy on loopback that answers every revocation itself, and remembers the URLs it was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, environ, start_response):
        self.asked.append(environ.get("REQUEST_URI") or environ.get("RAW_URI", ""))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]


@pytest.fixture
def proxy():
    forward = ForwardProxy()
    with LiveServer(forward) as server:
        forward.url = server.url
        yield forward


def test_a_revocation_goes_through_the_proxy_the_worker_started_with(proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings = ProxySettings()
    monkeypatch.delenv("HTTP_PROXY")  # read at start-up: a later change waits for a restart
    with NetworkSession(settings) as http:
        outcome = revoke(make_network("rfc7009", UNREACHABLE), TOKENS, http, QUICK)
    assert outcome.kind == "revoked"
    assert proxy.asked == [UNREACHABLE, UNREACHABLE]  # the refresh token, then the access token


def test_no_proxy_sends_a_revocation_straight_to_the_network(proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with NetworkSession(ProxySettings()) as http:
        outcome = revoke(make_network("rfc7009", UNREACHABLE), TOKENS, http, QUICK)
    assert outcome.kind == "retry" and "connection refused" in (outcome.error or "")
    assert proxy.asked == []
