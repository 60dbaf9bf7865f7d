"""GitHub-, Meta- and Reddit-like revocation endpoints as small Flask apps, and Demo Social token helpers."""
from __future__ import annotations

import html
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, jsonify, request

from demo.faults import CallCounter, Faults

CLIENT_ID = "fake-client"
CLIENT_SECRET = "fake-client-secret"
# Every fake names its revocation route "revoke", as Demo Social does, so faults.set("revoke", ...) fits all.
ENDPOINT = "revoke"


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it, before faults: what a test asserts order and form on."""

    endpoint: str
    method: str
    token: str | None
    hint: str | None
    basic_auth: bool


@dataclass
class FakeNetwork:
    """What app.extensions["fake"] holds: the client it trusts, its live tokens, what it saw, its faults."""

    client_id: str = CLIENT_ID
    client_secret: str = field(default=CLIENT_SECRET, repr=False)
    live: dict[str, str] = field(default_factory=dict)  # token -> account id
    calls: CallCounter = field(default_factory=CallCounter)
    faults: Faults = field(default_factory=Faults)
    seen: list[Call] = field(default_factory=list)
    answer: tuple[int, object] | None = None  # when set, every call gets this status and JSON body
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, account_id: str = "1001") -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.live[token] = account_id
        return token

    def is_live(self, token: str) -> bool:
        with self.lock:
            return token in self.live

    def owner(self, token: str | None) -> str | None:
        with self.lock:
            return self.live.get(token or "")

    def take(self, token: str | None) -> bool:
        """Revoke: True when the token was live."""
        with self.lock:
            return self.live.pop(token or "", None) is not None

    def client_ok(self) -> bool:
        auth = request.authorization
        expected = f"{self.client_id}:{self.client_secret}"
        return auth is not None and auth.type == "basic" and secrets.compare_digest(
            f"{auth.username}:{auth.password}", expected)

    def reset(self) -> None:
        self.faults.clear()
        self.calls.reset()
        with self.lock:
            self.seen.clear()
        self.answer = None


def state_of(app: Flask) -> FakeNetwork:
    return app.extensions["fake"]


def create_github_app(**credentials) -> Flask:
    """DELETE /applications/<client_id>/grant, as GitHub's "delete an app authorization"."""
    app, state = _fake_app("fake_github", credentials)

    @app.delete("/applications/<client_id>/grant", endpoint=ENDPOINT)
    def revoke(client_id: str):
        if not state.client_ok():
            return jsonify(message="Bad credentials"), 401
        if client_id != state.client_id:
            return jsonify(message="Not Found"), 404
        body = request.get_json(silent=True)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            return jsonify(message="Validation Failed"), 422
        return ("", 204) if state.take(token) else (jsonify(message="Not Found"), 404)

    return app


def create_meta_app(modern: bool = False, **credentials) -> Flask:
    """DELETE /<account_id>/permissions?access_token=..., as the Graph API. `modern` answers
    {"success": true} as today's Graph versions do, instead of the bare `true` of older ones."""
    app, state = _fake_app("fake_meta", credentials)

    @app.delete("/<account_id>/permissions", endpoint=ENDPOINT)
    def revoke(account_id: str):
        token = request.args.get("access_token")
        owner = state.owner(token)
        if owner is None:
            return jsonify(graph_error(190, "Error validating access token: the session has been invalidated.")), 400
        if owner != account_id:
            return jsonify(graph_error(200, "Permissions error")), 403
        state.take(token)
        return jsonify({"success": True} if modern else True)

    return app


def graph_error(code: int, message: str) -> dict:
    """A Graph API error body."""
    return {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "fake"}}


def create_reddit_app(**credentials) -> Flask:
    """POST /api/v1/revoke_token, Reddit's RFC 7009 form with Basic auth only, answering 204."""
    app, state = _fake_app("fake_reddit", credentials)

    @app.post("/api/v1/revoke_token", endpoint=ENDPOINT)
    def revoke():
        if not state.client_ok():
            return jsonify(message="Unauthorized", error=401), 401
        if not request.form.get("token"):
            return jsonify(error="invalid_request"), 400
        state.take(request.form["token"])  # unknown tokens get 204 too, as at Reddit
        return "", 204

    return app


def _fake_app(name: str, credentials: dict) -> tuple[Flask, FakeNetwork]:
    app = Flask(name)
    state = FakeNetwork(**credentials)
    app.extensions["fake"] = state

    @app.before_request
    def record_and_fault():
        if request.endpoint is None:
            return None
        state.calls.hit(request.endpoint)
        auth = request.authorization
        with state.lock:
            state.seen.append(Call(request.endpoint, request.method, _presented_token(),
                                   request.values.get("token_type_hint"), auth is not None and auth.type == "basic"))
        fault = state.faults.take(request.endpoint)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status is not None:
                response = jsonify(message="Injected fault.")
                response.status_code = fault.status
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
                return response
        if state.answer is not None:
            status, body = state.answer
            return jsonify(body), status
        return None

    return app, state


def _presented_token() -> str | None:
    body = request.get_json(silent=True) if request.is_json else None
    if isinstance(body, dict) and body.get("access_token"):
        return body["access_token"]
    return request.values.get("token") or request.values.get("access_token")


# --- Demo Social (the rfc7009 style is tested against it, a real Authlib server) ---------------

DEMO_CALLBACK = "http://127.0.0.1/networks/demo/callback"  # never visited: the code is read off Location
_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def demo_client(client_id: str, client_secret: str, auth_method: str = "client_secret_basic") -> dict:
    """A DEMO_CLIENTS entry for create_demo_app."""
    return {"client_id": client_id, "client_secret": client_secret, "redirect_uris": [DEMO_CALLBACK],
            "scope": "profile posts", "token_endpoint_auth_method": auth_method}


def demo_tokens(base_url: str, client: dict, account: str = "1001") -> dict:
    """Real tokens from Demo Social: authorize with PKCE, allow as `account`, redeem the code."""
    oauth = OAuth2Session(client["client_id"], client["client_secret"], scope=client["scope"],
                          redirect_uri=DEMO_CALLBACK, code_challenge_method="S256",
                          token_endpoint_auth_method=client["token_endpoint_auth_method"])
    verifier = generate_token(48)
    url, _state = oauth.create_authorization_url(f"{base_url}/oauth/authorize", code_verifier=verifier)
    browser = requests.Session()
    page = browser.get(url, timeout=5)
    form = {"csrf_token": _CSRF.search(page.text).group(1), "decision": "allow", "account": account}
    action = html.unescape(_FORM_ACTION.search(page.text).group(1))
    answer = browser.post(urljoin(url, action), data=form, allow_redirects=False, timeout=5)
    location = answer.headers["Location"]
    return dict(oauth.fetch_token(f"{base_url}/oauth/token", authorization_response=location,
                                  code_verifier=verifier, timeout=5))


def demo_introspect(base_url: str, client: dict, token: str) -> dict:
    credentials = (client["client_id"], client["client_secret"])
    if client["token_endpoint_auth_method"] == "client_secret_post":
        form = {"token": token, "client_id": credentials[0], "client_secret": credentials[1]}
        response = requests.post(f"{base_url}/oauth/introspect", data=form, timeout=5)
    else:
        response = requests.post(f"{base_url}/oauth/introspect", data={"token": token}, auth=credentials, timeout=5)
    response.raise_for_status()
    return response.json()


def watch_demo_revocations(demo_app: Flask) -> list[tuple[str | None, str | None]]:
    """Record (token_type_hint, token) of each revocation Demo Social handles, in arrival order.
    Call before the app serves its first request; faulted calls are not recorded."""
    seen: list[tuple[str | None, str | None]] = []

    @demo_app.before_request
    def record():
        if request.endpoint == "demo.revoke":
            seen.append((request.form.get("token_type_hint"), request.form.get("token")))

    return seen
