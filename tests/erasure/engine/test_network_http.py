"""The worker's sessions to the networks honour the proxy settings it started with, read once."""
from __future__ import annotations

import pytest
import requests

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


class Recorder:
    """A network that answers 200 and remembers what each call sent."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("QUERY_STRING", ""),
                          environ.get("CONTENT_TYPE", ""), environ.get("HTTP_AUTHORIZATION", ""), body))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']


def test_the_short_way_sends_what_requests_sends_and_reads_the_same_answer(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    recorder = Recorder()
    calls = [
        ("post", {"data": {"token": "tök en", "token_type_hint": "refresh_token", "scope": ["a", "b"], "x": None},
                  "auth": ("client id", "s3cret")}),
        ("post", {"data": {"token": "t"}, "headers": {"content-type": "application/x-www-form-urlencoded; x=1"}}),
        ("delete", {"json": {"access_token": "t"}, "auth": ("id", "secret")}),
        ("delete", {"params": {"access_token": "t&u"}}),
    ]
    with LiveServer(recorder) as server:
        answers = {}
        for label, session in (("requests", requests.Session()), ("short", NetworkSession(ProxySettings()))):
            with session:
                answers[label] = [getattr(session, method)(f"{server.url}/revoke", timeout=QUICK,
                                                           allow_redirects=False, **kwargs).json()
                                  for method, kwargs in calls]
    assert answers["short"] == answers["requests"] == [{"ok": True}] * len(calls)
    assert recorder.seen[len(calls):] == recorder.seen[:len(calls)]
