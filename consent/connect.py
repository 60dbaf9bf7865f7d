"""Connecting a network: OAuth authorization code with state and PKCE (S256), ending in a stored grant."""
from __future__ import annotations

import logging
import re

from flask import Blueprint, Flask, abort, current_app, flash, redirect, url_for
from flask_login import current_user, login_required

from app import logging as app_logging
from app.db import utcnow
from app.extensions import db
from consent import account_control, suppression
from consent.grants import AccountTaken, GrantError, store_grant
from consent.networks import Network
from consent.oauth import NetworkHttp

bp = Blueprint("networks", __name__)
log = logging.getLogger(__name__)

PENDING = "networks_oauth"  # session key: {network key: {"state": ..., "verifier": ...}}, one flow per network
CONTROL = account_control.AccountControl(PENDING, "/networks/{key}/callback", back_to="consent_pages.me")


def init_app(app: Flask) -> None:
    """The outbound HTTP client for the views, and a log filter that keeps codes out of access logs."""
    app.extensions.setdefault("network_http", NetworkHttp())
    RedactOAuthParams.install(("werkzeug",))


@bp.post("/networks/<key>/connect")
@login_required
def connect(key: str):
    url = CONTROL.start(_network(key))
    log.info("user %s is connecting %s", current_user.id, key)
    return redirect(url, code=303)


@bp.get("/networks/<key>/callback")
@login_required
def callback(key: str):
    network = _network(key)
    name = network.name
    try:
        proven = CONTROL.finish(network)
    except account_control.WrongState:
        log.warning("connect callback for %s with a missing or wrong state (user %s)", key, current_user.id)
        abort(400, f"This connection to {name} did not start here or has already been used. "
                   "Nothing was changed. Start again from your page.")
    except account_control.Declined as answer:
        log.info("user %s: %s answered %s", current_user.id, key, answer.code)
        if answer.denied:
            return CONTROL.back(f"You chose not to connect {name}. Nothing was changed.", "info")
        return CONTROL.back(f"{name} did not let the connection go ahead. Nothing was changed.")
    except account_control.NoCode:
        abort(400, f"{name} sent you back without an answer. Nothing was changed. Start again from your page.")
    except account_control.Refused as exc:
        log.info("user %s: %s refused the code exchange (%s)", current_user.id, key, exc.code)
        return CONTROL.back(f"{name} did not accept this connection attempt. Nothing was changed. Please try again.")
    except account_control.Unreachable:
        log.info("user %s: %s could not be reached", current_user.id, key)
        return CONTROL.back(f"{name} could not be reached; nothing was changed. Please try again later.")
    except account_control.ErrorAnswer as exc:
        log.info("user %s: %s answered with an error (%s)", current_user.id, key, exc.kind)
        return CONTROL.back(f"{name} answered with an error; nothing was changed. Please try again later.")
    except account_control.NoAccountId:
        log.info("user %s: %s userinfo lacks %s", current_user.id, key, network.account_id_field)
        return CONTROL.back(f"{name} did not tell us which account you connected; nothing was changed.")
    return _store(network, proven)


def _store(network: Network, proven: account_control.Proven):
    name = network.name
    try:
        # The network has answered; only now take SQLite's write lock (ending the read that
        # loaded the user), so no lock is held while waiting on the network.
        with db.writing():
            grant = store_grant(db.session, current_app.extensions["ownstory_vault"], current_user.id, network,
                                proven.token, proven.userinfo, utcnow())
            # The owner proved control of the account again: that is their new consent, so a past
            # opt-out of this account no longer stands in their way.
            suppression.lift(db.session, current_app.extensions["ownstory_peppers"], suppression.of_grant(grant))
    except AccountTaken:
        log.info("user %s: that %s account belongs to another person", current_user.id, network.key)
        return CONTROL.back(f"That {name} account is already connected to another Ownstory account, so nothing "
                            "was changed. If it is yours, sign in to that account; you can leave from there.")
    except GrantError:
        return CONTROL.back(f"{name} answered in a way we could not use; nothing was changed.")
    log.info("user %s connected %s", current_user.id, network.key)
    flash(f"Connected {name}. Nothing is shared until you consent to a purpose.", "success")
    return redirect(url_for("consent_pages.consents"))


def _network(key: str) -> Network:
    if current_user.role != "person":
        abort(403, "Only people connect networks to their own account.")
    return CONTROL.network(key)


class RedactOAuthParams(app_logging.RedactMatches):
    """Werkzeug's access log prints query strings; an OAuth callback's code and state must not appear."""

    PATTERN = re.compile(r"([?&](?:code|state|code_verifier|access_token|refresh_token|token)=)[^&\s\"]*")
