"""Serves Demo Social at /demo inside the Ownstory process, and fills its platform store (make run)."""
from __future__ import annotations

import hashlib
import hmac

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app import headers
from app.settings import resolve_database_url

DEMO_KEY = "demo"
DEMO_DATABASE_URL = "sqlite:///instance/demo_social.db"


def mount_demo_network(app: Flask) -> None:
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
            "client_secret": network.client_secret,
            "redirect_uris": [f"{app.config['BASE_URL']}/networks/{DEMO_KEY}/callback",
                              f"{app.config['BASE_URL']}/forget/networks/{DEMO_KEY}/callback"],  # /forget
            "scope": network.scope,
            "token_endpoint_auth_method": network.token_endpoint_auth,
        }],
    })
    headers.init_app(demo_app)  # served as one of our pages: the same security headers
    app.extensions["demo_app"] = demo_app
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/demo": demo_app})  # type: ignore[method-assign]
    for store in app.extensions["datamap"].stores:
        if store.name == "platform":
            seed_platform_store(store.url)
