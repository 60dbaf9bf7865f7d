"""The application factory: reads the configuration, binds extensions, registers every blueprint."""
from __future__ import annotations

import datetime as dt

from flask import Flask
from werkzeug.exceptions import HTTPException

from app import settings


def create_app(test_config: dict | None = None, environ: dict | None = None) -> Flask:
    """Build an Ownstory app. Raises settings.ConfigError for any configuration mistake."""
    app = Flask(__name__, instance_path=str(settings.ROOT / "instance"))
    app.config.update(settings.load(environ))
    if test_config:
        app.config.update(test_config)
    _configure_flask(app)
    _load_catalogues(app)
    _bind_extensions(app)
    _register_blueprints(app)
    _register_cli(app)
    if app.config["DEMO"]:
        from app.demo import mount_demo_network

        mount_demo_network(app)
    _trust_proxies(app)
    if app.config["INLINE_WORKER"]:
        _start_inline_worker_on_first_request(app)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind OWNSTORY_TRUSTED_PROXIES proxies, the client's address, scheme and host are the ones they
    forwarded. Outermost, so that /demo and every rate limit see them too. Off (0) by default: without
    a proxy, anyone could send X-Forwarded-For and pick the address their limits are counted for."""
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


def _start_inline_worker_on_first_request(app: Flask) -> None:
    """Under `make run` the worker loop runs in the web process; it starts with the first request,
    so that one-off commands (`flask users create`) never start it."""
    from erasure.engine.scheduler import start_inline

    @app.before_request
    def _start() -> None:
        if "ownstory_inline_worker" not in app.extensions:
            start_inline(app)


def _configure_flask(app: Flask) -> None:
    secure = app.config["BASE_URL"].startswith("https://")
    app.config.update(
        SESSION_COOKIE_NAME="ownstory_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        MAX_CONTENT_LENGTH=app.config.get("MAX_CONTENT_LENGTH") or 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        API_TITLE="Ownstory",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
    )
    app.config.setdefault("RATELIMIT_ENABLED", True)
    app.config.setdefault("FAST_PASSWORD_HASHING", False)
    app.secret_key = app.config["SECRET_KEY"]
    from app import logging as app_logging
    from app import templating

    app_logging.init_app(app)  # JSON lines with a request id, and redaction; not in tests unless JSON_LOGS
    templating.init_app(app)  # |date, |datetime and |iso


def _load_catalogues(app: Flask) -> None:
    from consent.networks import load_networks
    from consent.purposes import load_purposes
    from erasure.stores.datamap import load_datamap

    networks = load_networks(app.config["NETWORKS_FILE"], base_url=app.config["BASE_URL"])
    app.extensions["networks"] = networks
    app.extensions["purposes"] = load_purposes(app.config["PURPOSES_FILE"])
    datamap = load_datamap(app.config["DATAMAP_FILE"], networks=networks)
    datamap.check()  # what only the stores themselves can say (a bucket that must exist), once
    app.extensions["datamap"] = datamap


def _bind_extensions(app: Flask) -> None:
    from app import headers, limits
    from app.extensions import api, csrf, db, login_manager
    from app.mail import Mailer, signed
    from app.security import Passwords, Vault
    from consent.suppression import Peppers
    from erasure.context import outbox_path

    db.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.session_protection = "strong"
    csrf.init_app(app)
    limits.init_app(app)  # the limiter on OWNSTORY_RATELIMIT_STORAGE_URL, and the page a refusal shows
    headers.init_app(app)  # CSP, nosniff and Referrer-Policy on every response
    api.init_app(app)
    app.extensions["ownstory_passwords"] = Passwords(fast=app.config["FAST_PASSWORD_HASHING"])
    app.extensions["ownstory_vault"] = Vault(app.config["TOKEN_KEYS"])
    app.extensions["ownstory_peppers"] = Peppers.from_config(app.config["PEPPER"])
    sender, footer = signed(app.config["PLATFORM_NAME"], app.config["PLATFORM_CONTACT"])
    app.extensions["ownstory_mailer"] = Mailer(app.config["SMTP_URL"], outbox_path(app), sender, footer)


def _register_blueprints(app: Flask) -> None:
    """Every blueprint, in one visible place."""
    from app import accounts, audit, audit_api, health, metrics, pages
    from app.errors import handle_http_exception, handle_unexpected
    from app.extensions import api, csrf
    from consent import api as consent_api
    from consent import connect, gpc
    from consent import views as consent_views
    from erasure import wiring as erasure_wiring
    from erasure.export import views as export
    from erasure.forget import views as forget
    from erasure.optout import api as erasure_api
    from erasure.optout import views as erasure_views
    from erasure.receipts import api as log_api
    from erasure.receipts import views as receipt_views
    from erasure.retention import api as retention_api

    app.register_blueprint(pages.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(consent_views.bp)
    app.register_blueprint(connect.bp)
    connect.init_app(app)
    app.register_blueprint(erasure_views.bp)
    app.register_blueprint(receipt_views.bp)
    app.register_blueprint(forget.bp)
    forget.init_app(app)  # the one-time link's token stays out of access logs
    app.register_blueprint(export.bp)
    from erasure.oversight import auditor, dashboard

    app.register_blueprint(dashboard.bp)  # /operator, for operators
    app.register_blueprint(auditor.bp)  # /auditor, for auditors
    api.register_blueprint(consent_api.blp)
    api.register_blueprint(erasure_api.blp)
    api.register_blueprint(log_api.blp)
    api.register_blueprint(log_api.wellknown)
    for blp in (consent_api.blp, erasure_api.blp, log_api.blp):
        csrf.exempt(blp)  # the API authenticates with bearer tokens, never cookies
    api.register_blueprint(audit_api.blp)
    csrf.exempt(audit_api.blp)
    app.register_blueprint(metrics.bp)
    audit.init_app(app)  # records every 401 and 403
    api.register_blueprint(retention_api.blp)
    csrf.exempt(retention_api.blp)
    gpc.init_app(app)  # /.well-known/gpc.json, and the signal honoured on every page
    erasure_wiring.init_app(app)  # its /metrics figures, its /readyz check and /me's data held
    from erasure.agents import api as drp_api
    from erasure.agents import views as drp_pages

    app.register_blueprint(drp_api.bp)  # /drp: the Data Rights Protocol's endpoints, for authorized agents
    csrf.exempt(drp_api.bp)  # signed bodies and bearer tokens, never cookies
    app.register_blueprint(drp_pages.bp)  # where an agent sends a person: verification, and an access's results
    drp_pages.init_app(app)  # their links' tokens stay out of access logs
    from erasure.agents import openapi as drp_openapi

    drp_openapi.document(api.spec, app.url_map)  # the DRP endpoints in the OpenAPI document
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)


def _register_cli(app: Flask) -> None:
    """The base's commands, then each feature's."""
    from app import cli
    from consent import cli as consent_cli
    from erasure import cli as erasure_cli

    cli.init_app(app)
    consent_cli.init_app(app)
    erasure_cli.init_app(app)
