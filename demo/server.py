"""The Demo Social Flask app: its factory, the sign-in page and the OAuth and API routes."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import scope_to_list
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from .accounts import DEMO_ACCOUNTS, find_account, sample_posts
from .faults import CallCounter, Faults, UnderWay
from .models import Base, Client
from .oauth import CLIENT_AUTH_METHODS, close_db, create_authorization_server, require_oauth
from .strict import init_strict, metadata_document, name_issuer

SCOPES = {
    "profile": "See your account id, handle and display name",
    "posts": "Read your posts",
}

DEFAULTS: dict[str, Any] = {
    "DEMO_DATABASE_URL": "sqlite://",
    "DEMO_CLIENTS": [],
    "DEMO_ACCESS_TOKEN_TTL": 3600,
    "DEMO_LATENCY": 0.0,  # seconds every call waits before its answer (the bench's model of a real network)
    "DEMO_POSTS_PER_ACCOUNT": 20,  # as many as seed_platform_store copies by default
    # Its own cookie name: mounted under the main app's host, a plain "session" would clobber Ownstory's.
    "SESSION_COOKIE_NAME": "demo_social_session",
    "SESSION_COOKIE_SAMESITE": "Lax",
}

_FAULT_ERRORS = {401: "invalid_client", 429: "slow_down", 500: "server_error"}


@dataclass
class DemoState:
    """What app.extensions["demo"] holds: the store, the OAuth server and the test hooks."""

    engine: Engine
    sessions: sessionmaker[Session]
    server: AuthorizationServer | None = None
    calls: CallCounter = field(default_factory=CallCounter)
    faults: Faults = field(default_factory=Faults)
    under_way: UnderWay = field(default_factory=UnderWay)
    db_lock: threading.Lock = field(default_factory=threading.Lock)


def create_demo_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
    ttl = int(app.config["DEMO_ACCESS_TOKEN_TTL"])
    if ttl < 1:
        raise ValueError("DEMO_ACCESS_TOKEN_TTL must be at least one second")
    app.config.update(
        OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": ttl, "refresh_token": ttl},
        OAUTH2_REFRESH_TOKEN_GENERATOR=True,
        OAUTH2_SCOPES_SUPPORTED=list(SCOPES),
    )

    engine = _create_engine(app.config["DEMO_DATABASE_URL"])
    # A toy provider's private store: create_all is enough, there is nothing to migrate.
    Base.metadata.create_all(engine)
    state = DemoState(engine, sessionmaker(engine, expire_on_commit=False))
    app.extensions["demo"] = state
    register_clients(state.sessions, app.config["DEMO_CLIENTS"])
    state.server = create_authorization_server(app)
    init_strict(app, state.server)

    app.before_request(_count_and_fault)
    app.teardown_request(_answered)
    app.register_error_handler(OAuth2Error, _oauth_error)
    app.teardown_appcontext(close_db)
    app.register_blueprint(bp)
    return app


def register_clients(sessions: sessionmaker[Session], specs: list[dict]) -> None:
    """Insert or update each configured client, so a changed secret or callback takes effect on start."""
    with sessions.begin() as db:
        for spec in specs:
            method = spec.get("token_endpoint_auth_method", "client_secret_basic")
            if method not in CLIENT_AUTH_METHODS:
                raise ValueError(f"unsupported token_endpoint_auth_method {method!r}")
            uris = spec["redirect_uris"]
            client = db.scalar(select(Client).where(Client.client_id == spec["client_id"]))
            if client is None:
                client = Client(client_id=spec["client_id"])
                db.add(client)
            client.client_secret = spec["client_secret"]
            client.client_name = spec.get("client_name", spec["client_id"])
            client.redirect_uris = [uris] if isinstance(uris, str) else list(uris)
            client.scope = spec.get("scope", " ".join(SCOPES))
            client.token_endpoint_auth_method = method


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url)
    if parsed.database in (None, "", ":memory:"):
        # One shared connection, or each pooled connection would get its own empty database.
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    if not parsed.database.startswith("file:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, connect_args={"check_same_thread": False})


def _state() -> DemoState:
    return current_app.extensions["demo"]


def _count_and_fault() -> Response | None:
    """Count every routed call, then apply an injected fault if a test set one."""
    if request.endpoint is None:
        return None
    name = request.endpoint.rpartition(".")[2]
    state = _state()
    state.calls.hit(name)
    state.under_way.enter(name)
    g.demo_call = name  # left when the answer is sent (_answered)
    if current_app.config.get("DEMO_LATENCY"):
        time.sleep(current_app.config["DEMO_LATENCY"])  # a network across the internet, not next door
    fault = state.faults.take(name)
    if fault is None:
        return None
    if fault.delay:
        time.sleep(fault.delay)
    if fault.status is None:
        return None
    error = _FAULT_ERRORS.get(fault.status, "temporarily_unavailable" if fault.status >= 500 else "invalid_request")
    response = jsonify(error=error, error_description="Injected fault.")
    response.status_code = fault.status
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


def _answered(_error: BaseException | None) -> None:
    name = g.pop("demo_call", None)
    if name is not None:
        _state().under_way.leave(name)


def _oauth_error(error: OAuth2Error) -> tuple[Response, int]:
    """A safety net for errors Authlib raises outside its own handling, e.g. plain HTTP on a
    non-loopback host (insecure_transport): a JSON 400, never a 500."""
    return jsonify(dict(error.get_body())), error.status_code


bp = Blueprint("demo", __name__)


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    server = _state().server
    decision = request.form.get("decision") if request.method == "POST" else None
    account = None
    if request.method == "POST":
        if not _csrf_ok():
            return _bad_request("This sign-in form has expired. Go back to the app and start again.")
        if decision not in ("allow", "deny"):
            return _bad_request("Choose Allow or Deny.")
        if decision == "allow":
            account = find_account(request.form.get("account"))
            if account is None:
                return _bad_request("Choose one of the demo accounts.")
    try:
        grant = server.get_consent_grant(end_user=account)
    except OAuth2Error as error:
        if error.redirect_uri:
            # The client and its callback check out, so the client hears of the error (RFC 6749 4.1.2.1),
            # with iss as on every other answer (RFC 9207 2).
            return name_issuer(server, server.handle_error_response(None, error))
        return _bad_request(error.description or error.error)
    except ValueError:
        # Authlib will not build an error text that echoes unusual characters back.
        return _bad_request("The sign-in request is malformed.")
    if request.method == "GET":
        return _consent_page(grant)
    return server.create_authorization_response(grant_user=account, grant=grant)


def _consent_page(grant) -> Response:
    csrf_token = session.setdefault("demo_csrf", secrets.token_urlsafe(32))
    page = render_template(
        "demo/authorize.html",
        client=grant.client,
        accounts=DEMO_ACCOUNTS,
        scopes=[(s, SCOPES.get(s, s)) for s in scope_to_list(grant.request.scope) or []],
        csrf_token=csrf_token,
        action=f"{url_for('.authorize')}?{request.query_string.decode('utf-8', 'replace')}",
    )
    response = make_response(page)
    # A consent page must not be framed by another site (clickjacking).
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'"
    response.headers["Cache-Control"] = "no-store"
    return response


def _csrf_ok() -> bool:
    expected = session.get("demo_csrf", "")
    given = request.form.get("csrf_token", "")
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def _bad_request(message: str) -> tuple[str, int]:
    return render_template("demo/error.html", message=message), 400


@bp.post("/oauth/token")
def token():
    return _state().server.create_token_response()


@bp.post("/oauth/revoke")
def revoke():
    return _state().server.create_endpoint_response("revocation")


@bp.post("/oauth/introspect")
def introspect():
    return _state().server.create_endpoint_response("introspection")


@bp.get("/userinfo")
@require_oauth("profile")
def userinfo():
    account = find_account(current_token.account_id)
    if account is None:
        return jsonify(error="not_found"), 404
    return jsonify(sub=account.account_id, preferred_username=account.handle, name=account.display_name)


@bp.get("/api/posts")
@require_oauth("posts")
def posts():
    account = find_account(current_token.account_id)
    if account is None:
        return jsonify(error="not_found"), 404
    items = sample_posts(account, int(current_app.config["DEMO_POSTS_PER_ACCOUNT"]))
    return jsonify(
        account_id=account.account_id,
        handle=account.handle,
        posts=[
            {"id": p.id, "body": p.body, "created_at": p.created_at.isoformat().replace("+00:00", "Z")} for p in items
        ],
    )


@bp.get("/.well-known/oauth-authorization-server")
@bp.get("/.well-known/openid-configuration")
def metadata():
    """RFC 8414 metadata, so a client can be pointed at the provider with one URL (unless DEMO_DISCOVERY is off)."""
    if not current_app.config["DEMO_DISCOVERY"]:
        return jsonify(error="not_found"), 404
    return jsonify(metadata_document(list(SCOPES), list(CLIENT_AUTH_METHODS)))


# The endpoints an outage takes down: everything Ownstory calls, so an operator can watch a stuck
# opt-out become "needs attention" under `make run`, bring the network back, and retry it.
OUTAGE_ENDPOINTS = ("authorize", "token", "revoke", "introspect", "userinfo", "posts")
OUTAGE_RETRY_AFTER = 5


@bp.route("/outage", methods=["GET", "POST"])
def outage():
    """Demo Social's own switch for a network outage (a toy provider's admin page, for trying Ownstory)."""
    if request.method == "POST":
        if not _csrf_ok():
            return _bad_request("This form has expired. Open the outage page again.")
        down = request.form.get("state") == "down"
        faults = _state().faults
        for name in OUTAGE_ENDPOINTS:
            if down:
                faults.set(name, status=503, retry_after=OUTAGE_RETRY_AFTER)
            else:
                faults.clear(name)
        current_app.config["DEMO_OUTAGE"] = down
    csrf_token = session.setdefault("demo_csrf", secrets.token_urlsafe(32))
    return render_template("demo/outage.html", down=bool(current_app.config.get("DEMO_OUTAGE")),
                           csrf_token=csrf_token, action=url_for(".outage"))
