"""erasure.revocation against real loopback networks: Demo Social for rfc7009, fakes for the others."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from flask import Flask, redirect

from consent.networks import Network, Revocation
from demo.faults import CallCounter, Faults
from demo.server import create_demo_app
from erasure.engine.network_http import NetworkSession, ProxySettings
from erasure.engine.revocation import (
    GrantTokens,
    Outcome,
    backoff,
    next_delay,
    parse_retry_after,
    revoke,
)
from tests.erasure.engine.helpers_fake_networks import (
    CLIENT_ID,
    CLIENT_SECRET,
    ENDPOINT,
    FakeNetwork,
    create_github_app,
    create_meta_app,
    create_reddit_app,
    demo_client,
    demo_introspect,
    demo_tokens,
    graph_error,
    state_of,
    watch_demo_revocations,
)
from tests.helpers_servers import LiveServer, serve

STYLES = ["rfc7009", "github", "meta", "reddit"]
NAMES = {"rfc7009": "Demo Social", "github": "GitHub", "meta": "Meta", "reddit": "Reddit", "none": "Nowhere"}
BASIC = demo_client("revoke-basic", "revoke-basic-secret")
POST = demo_client("revoke-post", "revoke-post-secret", "client_secret_post")
QUICK = (2, 0.3)  # connect, read: a delayed answer must not hold a test up


def make_network(style: str, url: str = "", *, auth: str = "client_secret_basic",
                 client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> Network:
    return Network(
        key=style, name=NAMES[style], authorize_url="http://127.0.0.1:9/authorize",
        token_url="http://127.0.0.1:9/token", userinfo_url="http://127.0.0.1:9/userinfo",
        account_id_field="sub", handle_field="preferred_username", scopes=("profile",),
        client_id=client_id, client_secret=client_secret, token_endpoint_auth=auth,
        revocation=Revocation(style, url, "https://nowhere.example/settings" if style == "none" else ""),
    )


def assert_nothing_leaks(outcome: Outcome, tokens: GrantTokens, network: Network) -> None:
    shown = f"{outcome!r} {outcome.error} {tokens!r} {tokens}"
    for secret in (tokens.access_token, tokens.refresh_token, network.client_secret):
        if secret:
            assert secret not in shown


# --- the networks --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    app = create_demo_app({"DEMO_CLIENTS": [BASIC, POST]})
    app.config["revocations"] = watch_demo_revocations(app)
    server = serve(app)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fakes():
    servers = {"github": serve(create_github_app()), "meta": serve(create_meta_app()),
               "reddit": serve(create_reddit_app())}
    yield servers
    for server in servers.values():
        server.stop()


@dataclass
class Peer:
    """One style's live network, as the generic tests see it."""

    network: Network
    faults: Faults
    calls: CallCounter
    new_tokens: Callable[[], GrantTokens]
    is_live: Callable[[GrantTokens], bool]
    fake: FakeNetwork | None = None  # None for Demo Social


def demo_grant(demo: LiveServer, client: dict = BASIC) -> GrantTokens:
    token = demo_tokens(demo.url, client)
    return GrantTokens(token["access_token"], token["refresh_token"], "1001")


def demo_active(demo: LiveServer, tokens: GrantTokens, client: dict = BASIC) -> dict[str, bool]:
    return {kind: demo_introspect(demo.url, client, getattr(tokens, kind))["active"]
            for kind in ("refresh_token", "access_token")}


@pytest.fixture(params=STYLES)
def peer(request) -> Peer:
    style = request.param
    if style == "rfc7009":
        demo = request.getfixturevalue("demo")
        state = demo.app.extensions["demo"]
        state.faults.clear()
        state.calls.reset()
        network = make_network(style, f"{demo.url}/oauth/revoke", client_id=BASIC["client_id"],
                               client_secret=BASIC["client_secret"])
        return Peer(network, state.faults, state.calls, lambda: demo_grant(demo),
                    lambda tokens: any(demo_active(demo, tokens).values()))
    server = request.getfixturevalue("fakes")[style]
    state = state_of(server.app)
    state.reset()
    url = {"github": f"{server.url}/applications/{CLIENT_ID}/grant", "meta": f"{server.url}/{{account_id}}/permissions",
           "reddit": f"{server.url}/api/v1/revoke_token"}[style]
    refresh = style == "reddit"  # GitHub and Meta revoke by access token alone

    def new_tokens() -> GrantTokens:
        return GrantTokens(state.issue("1001"), state.issue("1001") if refresh else None, "1001")

    def is_live(tokens: GrantTokens) -> bool:
        return any(state.is_live(t) for t in (tokens.access_token, tokens.refresh_token) if t)

    return Peer(make_network(style, url), state.faults, state.calls, new_tokens, is_live, state)


@pytest.fixture
def http():
    with NetworkSession(ProxySettings()) as session:  # the worker's own: its short path for a plain call
        yield session


# --- every style ---------------------------------------------------------------------------------


def test_a_confirmed_revocation_is_revoked_and_the_tokens_stop_working(peer, http):
    tokens = peer.new_tokens()
    assert peer.is_live(tokens)
    outcome = revoke(peer.network, tokens, http)
    assert outcome == Outcome("revoked") and outcome.done
    assert not peer.is_live(tokens)
    assert_nothing_leaks(outcome, tokens, peer.network)


@pytest.mark.parametrize("status", [503, 429])
def test_busy_with_retry_after_in_seconds_is_retried_then_succeeds_when_the_network_recovers(peer, http, status):
    tokens = peer.new_tokens()
    peer.faults.set(ENDPOINT, status=status, retry_after=2, times=1)
    outcome = revoke(peer.network, tokens, http)
    assert (outcome.kind, outcome.retry_after) == ("retry", 2.0)
    assert outcome.error.startswith(f"HTTP {status} from {peer.network.name}")  # Demo Social adds its error code
    assert not outcome.done and peer.is_live(tokens), "nothing is revoked without confirmation"
    assert_nothing_leaks(outcome, tokens, peer.network)
    assert revoke(peer.network, tokens, http).kind == "revoked"
    assert not peer.is_live(tokens)


def test_retry_after_as_an_http_date_is_honoured(peer, http):
    tokens = peer.new_tokens()
    peer.faults.set(ENDPOINT, status=503, retry_after=format_datetime(datetime.now(UTC) + timedelta(seconds=30),
                                                                      usegmt=True), times=1)
    outcome = revoke(peer.network, tokens, http)
    assert outcome.kind == "retry" and 25 <= outcome.retry_after <= 30
    assert peer.is_live(tokens)


def test_a_server_error_is_retried_without_a_hint(peer, http):
    tokens = peer.new_tokens()
    peer.faults.set(ENDPOINT, status=500, times=1)
    outcome = revoke(peer.network, tokens, http)
    assert outcome.kind == "retry" and outcome.retry_after is None
    assert outcome.error.startswith(f"HTTP 500 from {peer.network.name}")
    assert peer.is_live(tokens)


def test_a_network_too_slow_to_answer_is_retried(peer, http):
    tokens = peer.new_tokens()
    peer.faults.set(ENDPOINT, delay=3.0, times=1)
    started = time.monotonic()
    outcome = revoke(peer.network, tokens, http, timeout=QUICK)
    assert time.monotonic() - started < 3.0  # it stopped waiting at its read timeout (0.3 s), not at the answer
    assert outcome == Outcome("retry", error=f"timed out waiting for {peer.network.name}")
    assert_nothing_leaks(outcome, tokens, peer.network)


def test_a_network_that_refuses_connections_is_retried(peer, http):
    down = serve(Flask("down"))
    port = down.port
    down.stop()
    network = make_network(peer.network.revocation.style,
                           _on_port(peer.network.revocation.url, port), auth=peer.network.token_endpoint_auth,
                           client_id=peer.network.client_id, client_secret=peer.network.client_secret)
    tokens = peer.new_tokens()
    outcome = revoke(network, tokens, http, timeout=QUICK)
    assert outcome == Outcome("retry", error=f"connection refused by {network.name}")
    assert_nothing_leaks(outcome, tokens, network)  # Meta's URL carries the token; the error must not


def test_a_redirect_is_not_a_confirmation_and_is_not_followed(peer, http):
    target = peer.network.revocation.url
    app = Flask("redirector")
    app.add_url_rule("/<path:anything>", "any", lambda anything: redirect(target, 307),
                     methods=["POST", "DELETE"])
    tokens = peer.new_tokens()
    with serve(app) as redirector:
        network = make_network(peer.network.revocation.style, f"{redirector.url}/moved",
                               client_id=peer.network.client_id, client_secret=peer.network.client_secret)
        outcome = revoke(network, tokens, http)
    assert outcome.kind == "failed" and "redirect is not a confirmation" in outcome.error
    assert peer.calls[ENDPOINT] == 0 and peer.is_live(tokens)


@pytest.mark.parametrize("peer", ["rfc7009", "github", "reddit"], indirect=True)
def test_a_wrong_client_secret_fails_and_needs_a_human(peer, http):
    tokens = peer.new_tokens()
    network = make_network(peer.network.revocation.style, peer.network.revocation.url,
                           client_id=peer.network.client_id, client_secret="wrong-secret-do-not-show")
    outcome = revoke(network, tokens, http)
    assert outcome.kind == "failed" and outcome.error.startswith(f"HTTP 401 from {network.name}")
    assert peer.is_live(tokens)
    assert_nothing_leaks(outcome, tokens, network)


def _on_port(url: str, port: int) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://127.0.0.1:{port}/{rest.split('/', 1)[1]}"


# --- rfc7009: Demo Social ------------------------------------------------------------------------


def demo_network(demo: LiveServer, client: dict = BASIC) -> Network:
    return make_network("rfc7009", f"{demo.url}/oauth/revoke", auth=client["token_endpoint_auth_method"],
                        client_id=client["client_id"], client_secret=client["client_secret"])


@pytest.mark.parametrize("client", [BASIC, POST], ids=["client_secret_basic", "client_secret_post"])
def test_rfc7009_revokes_the_refresh_token_first_then_the_access_token(demo, http, client):
    seen = demo.app.config["revocations"]
    tokens = demo_grant(demo, client)
    assert demo_active(demo, tokens, client) == {"refresh_token": True, "access_token": True}
    seen.clear()
    # Demo Social enforces each client's registered auth method, so success proves the right one was used.
    assert revoke(demo_network(demo, client), tokens, http) == Outcome("revoked")
    assert seen == [("refresh_token", tokens.refresh_token), ("access_token", tokens.access_token)]
    assert demo_active(demo, tokens, client) == {"refresh_token": False, "access_token": False}


def test_rfc7009_tokens_already_invalid_still_count_as_revoked(demo, http):
    tokens = demo_grant(demo)
    assert revoke(demo_network(demo), tokens, http).kind == "revoked"
    # RFC 7009 2.2: 200 for an invalid token too, so a repeat (a retried step) is harmless.
    assert revoke(demo_network(demo), tokens, http).kind == "revoked"
    assert revoke(demo_network(demo), GrantTokens("never-issued", None, "1001"), http).kind == "revoked"


def test_rfc7009_with_only_an_access_token_revokes_that(demo, http):
    tokens = demo_grant(demo)
    seen = demo.app.config["revocations"]
    seen.clear()
    assert revoke(demo_network(demo), GrantTokens(tokens.access_token, None, "1001"), http).kind == "revoked"
    assert seen == [("access_token", tokens.access_token)]
    assert demo_active(demo, tokens)["access_token"] is False


def test_rfc7009_a_client_error_fails_without_echoing_the_answer(demo, http):
    tokens = demo_grant(demo)
    demo.app.extensions["demo"].faults.set("revoke", status=400, times=1)
    outcome = revoke(demo_network(demo), tokens, http)
    assert outcome == Outcome("failed", error="HTTP 400 from Demo Social (invalid_request)")
    assert "Injected" not in outcome.error


def test_with_no_token_stored_nothing_is_sent_and_a_human_must_look(demo, http):
    calls = demo.app.extensions["demo"].calls
    calls.reset()
    outcome = revoke(demo_network(demo), GrantTokens(None, None, "1001"), http)
    assert outcome.kind == "failed" and calls["revoke"] == 0


# --- github, meta, reddit --------------------------------------------------------------------------


@pytest.mark.parametrize("peer", ["github"], indirect=True)
def test_github_deletes_the_grant_with_basic_auth_and_json(peer, http):
    tokens = peer.new_tokens()
    assert revoke(peer.network, tokens, http).kind == "revoked"
    call = peer.fake.seen[-1]
    assert (call.method, call.token, call.basic_auth) == ("DELETE", tokens.access_token, True)
    # Gone already: 404 for an unknown token, 422 for one GitHub will not take.
    assert revoke(peer.network, tokens, http) == Outcome("already_invalid")
    peer.faults.set(ENDPOINT, status=422, times=1)
    assert revoke(peer.network, peer.new_tokens(), http) == Outcome("already_invalid")


@pytest.mark.parametrize("peer", ["github"], indirect=True)
def test_github_only_204_confirms(peer, http):
    tokens = peer.new_tokens()
    peer.fake.answer = (200, {"message": "ok"})
    outcome = revoke(peer.network, tokens, http)
    assert outcome.kind == "failed" and "not the confirmation" in outcome.error
    assert peer.is_live(tokens)


@pytest.mark.parametrize("peer", ["github"], indirect=True)
def test_github_secondary_rate_limit_403_with_retry_after_is_retried(peer, http):
    peer.faults.set(ENDPOINT, status=403, retry_after=60, times=1)
    assert revoke(peer.network, peer.new_tokens(), http) == Outcome("retry", 60.0, "HTTP 403 from GitHub")
    peer.faults.set(ENDPOINT, status=403, times=1)
    assert revoke(peer.network, peer.new_tokens(), http).kind == "failed"


@pytest.mark.parametrize("peer", ["meta"], indirect=True)
def test_meta_deletes_permissions_for_the_account_with_the_users_token(peer, http):
    tokens = peer.new_tokens()
    assert revoke(peer.network, tokens, http).kind == "revoked"
    call = peer.fake.seen[-1]
    assert (call.method, call.token, call.basic_auth) == ("DELETE", tokens.access_token, False)
    # Graph error 190: the token is invalid or expired.
    assert revoke(peer.network, tokens, http) == Outcome("already_invalid")


@pytest.mark.parametrize("peer", ["meta"], indirect=True)
def test_meta_refuses_another_accounts_permissions(peer, http):
    tokens = peer.new_tokens()
    outcome = revoke(peer.network, GrantTokens(tokens.access_token, None, "2002"), http)
    assert outcome == Outcome("failed", error="HTTP 403 from Meta")
    assert peer.is_live(tokens)


@pytest.mark.parametrize("peer", ["meta"], indirect=True)
@pytest.mark.parametrize("answer, kind", [
    ((200, False), "failed"),
    ((200, {"success": False}), "failed"),
    ((400, graph_error(4, "Application request limit reached")), "retry"),
])
def test_meta_counts_only_true_as_done_and_waits_out_throttling(peer, http, answer, kind):
    tokens = peer.new_tokens()
    peer.fake.answer = answer
    assert revoke(peer.network, tokens, http).kind == kind
    assert peer.is_live(tokens)


def test_meta_in_todays_graph_versions_answers_success_true(http):
    app = create_meta_app(modern=True)
    with serve(app) as server:
        network = make_network("meta", f"{server.url}/{{account_id}}/permissions")
        tokens = GrantTokens(state_of(app).issue("1001"), None, "1001")
        assert revoke(network, tokens, http).kind == "revoked"


@pytest.mark.parametrize("peer", ["reddit"], indirect=True)
def test_reddit_revokes_refresh_then_access_with_basic_auth_whatever_the_catalogue_says(peer, http):
    tokens = peer.new_tokens()
    network = make_network("reddit", peer.network.revocation.url, auth="client_secret_post")
    assert revoke(network, tokens, http).kind == "revoked"
    seen = [(c.hint, c.token, c.basic_auth) for c in peer.fake.seen]
    assert seen == [("refresh_token", tokens.refresh_token, True), ("access_token", tokens.access_token, True)]
    peer.fake.answer = (200, {})
    assert revoke(network, peer.new_tokens(), http).kind == "revoked"  # 200 is as good as 204


# --- none ------------------------------------------------------------------------------------------


class NoHttp(requests.Session):
    def request(self, *args, **kwargs):
        raise AssertionError("style none must not make any HTTP request")


def test_style_none_is_manual_without_any_http():
    tokens = GrantTokens("access", "refresh", "1001")
    outcome = revoke(make_network("none"), tokens, NoHttp())
    assert outcome == Outcome("manual") and outcome.done


# --- the parts ---------------------------------------------------------------------------------------


def test_grant_tokens_never_show_in_repr():
    tokens = GrantTokens("secret-access", "secret-refresh", "1001")
    assert repr(tokens) == "GrantTokens(access_token=<set>, refresh_token=<set>, account_id='1001')"
    assert "secret" not in str(tokens)
    assert repr(GrantTokens(None, None, "1")).startswith("GrantTokens(access_token=None, refresh_token=None")


def test_an_outcome_kind_must_be_known():
    with pytest.raises(ValueError):
        Outcome("done")
    assert [Outcome(k).done for k in ("revoked", "already_invalid", "manual", "retry", "failed")] == [
        True, True, True, False, False]


NOW = datetime(2026, 11, 25, 19, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value, seconds", [
    ("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("9" * 400, 3600.0),
    ("Wed, 25 Nov 2026 19:01:30 GMT", 90.0), ("Wed, 25 Nov 2026 18:00:00 GMT", 0.0),
    ("Thu, 26 Nov 2026 19:00:00 GMT", 3600.0),
    (None, None), ("", None), ("soon", None), ("-5", None), ("1.5", None), ("²", None),
])
def test_retry_after_reads_seconds_or_an_http_date_and_ignores_garbage(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


def top() -> float:
    return 0.999999  # as high as random.random() goes


def test_backoff_doubles_to_a_cap_with_full_jitter():
    assert [round(backoff(n, rng=top)) for n in (0, 1, 2, 3, 9, 10, 100_000)] == [2, 2, 4, 8, 512, 600, 600]
    assert backoff(5, rng=lambda: 0.0) == 0.0
    assert all(0 <= backoff(4) < 16 for _ in range(200))
    assert backoff(3, base=1.0, cap=5.0, rng=top) < 4


def test_next_delay_never_waits_less_than_retry_after():
    assert next_delay(Outcome("retry", retry_after=30.0), 1, rng=lambda: 0.5) == 30.0
    assert next_delay(Outcome("retry", retry_after=1.0), 5, rng=lambda: 0.5) == 16.0
    assert next_delay(Outcome("retry"), 2, rng=lambda: 0.25) == 1.0
