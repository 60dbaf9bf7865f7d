"""Serves Demo Social at /demo inside the Ownstory process, and fills its platform store (make run); and
Demo Billing at /demo/billing, the reference service that the data map's http store calls."""
from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app import headers
from app.settings import resolve_database_url

DEMO_KEY = "demo"
DEMO_DATABASE_URL = "sqlite:///instance/demo_social.db"


def mount_demo_network(app: Flask) -> None:
    from demo.billing import create_billing_app
    from demo.platform import seed_platform_store
    from demo.server import create_demo_app

    network = app.extensions["networks"].get(DEMO_KEY)
    if network is None:
        # An operator trying their own catalogue under `make run`: theirs is what counts, so no demo.
        app.logger.warning("Demo Social is off: %s has no [networks.%s] entry (OWNSTORY_DEMO=1 serves it only "
                           "when the catalogue lists it)", app.config["NETWORKS_FILE"], DEMO_KEY)
        app.config["DEMO"] = False
        return
    demo_app = create_demo_app({
        "DEMO_DATABASE_URL": resolve_database_url(app.config.get("DEMO_DATABASE_URL", DEMO_DATABASE_URL)),
        # Its own session secret, derived so that it survives restarts without another file.
        "SECRET_KEY": hmac.new(app.config["SECRET_KEY"].encode(), b"demo social", hashlib.sha256).hexdigest(),
        # As a certified provider does, it names itself in every authorization response (RFC 9207)
        # when the entry gives its issuer.
        "DEMO_ISSUE_ISS": bool(network.issuer),
        "DEMO_ISSUER": network.issuer,
        "DEMO_CLIENTS": [{
            "client_id": network.client_id,
            "client_name": app.config["PLATFORM_NAME"],  # its consent screen names the platform, not a client id
            "client_secret": network.client_secret,
            "redirect_uris": [f"{app.config['BASE_URL']}{path}/{DEMO_KEY}/callback"
                              for path in ("/networks", "/forget/networks", "/drp/verify/networks")],
            "scope": network.scope,
            "token_endpoint_auth_method": network.token_endpoint_auth,
        }],
    })
    headers.init_app(demo_app)  # served as one of our pages: the same security headers
    app.extensions["demo_app"] = demo_app
    billing_app = create_billing_app({
        "BILLING_DATABASE": str(app.config.get("DEMO_BILLING_DATABASE") or Path(app.instance_path) / "demo_billing.db"),
        # It checks Ownstory's signatures as any service would: against the keys Ownstory publishes.
        "OWNSTORY_JWKS_URL": f"{app.config['BASE_URL']}/.well-known/jwks.json",
        "BILLING_SEED_ON_FIRST_SIGHT": True,  # whatever address a visitor signs up with has invoices to delete
    })
    app.extensions["demo_billing_app"] = billing_app
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app,  # type: ignore[method-assign]
                                        {"/demo": demo_app, "/demo/billing": billing_app})
    for store in app.extensions["datamap"].stores:
        if store.name == "platform" and store.kind == "sql":
            seed_platform_store(store.url)
