"""Connecting a network: OAuth authorization code with state and PKCE (S256), ending in a stored grant."""
from __future__ import annotations

import hmac
import logging
import re

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from flask import Blueprint, Flask, abort, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required

from app.db import utcnow, write_lock
from app.extensions import db
from consent import suppression
from consent.grants import AccountTaken, GrantError, MissingAccountId, store_grant
from consent.networks import Network
from consent.oauth import NetworkHttp, error_code, fetch_userinfo

bp = Blueprint("networks", __name__)
log = logging.getLogger(__name__)

PENDING = "networks_oauth"  # session key: {network key: {"state": ..., "verifier": ...}}, one flow per network


def init_app(app: Flask) -> None:
    """The outbound HTTP client for the views, and a log filter that keeps codes out of access logs."""
    app.extensions.setdefault("network_http", NetworkHttp())
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactOAuthParams) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(RedactOAuthParams())


@bp.post("/networks/<key>/connect")
@login_required
def connect(key: str):
    network = _network(key)
    verifier = generate_token(64)  # PKCE: 64 characters of [A-Za-z0-9], within RFC 7636's 43..128
    oauth = _http().session(network, redirect_uri=callback_url(key))
    url, state = oauth.create_authorization_url(network.authorize_url, code_verifier=verifier, scope=network.scope)
    # The verifier stays in the signed session cookie, as Authlib's own Flask client keeps it:
    # only this browser can finish the flow, and an intercepted code is useless without it.
    session[PENDING] = {**session.get(PENDING, {}), key: {"state": state, "verifier": verifier}}
    log.info("user %s is connecting %s", current_user.id, key)
    return redirect(url, code=303)


@bp.get("/networks/<key>/callback")
@login_required
def callback(key: str):
    network = _network(key)
    pending = dict(session.get(PENDING, {}))
    started = pending.pop(key, None)  # single use, whatever happens next
    session[PENDING] = pending
    state = request.args.get("state", "")
    if not started or not state or not hmac.compare_digest(state.encode(), started["state"].encode()):
        log.warning("connect callback for %s with a missing or wrong state (user %s)", key, current_user.id)
        abort(400, f"This connection to {network.name} did not start here or has already been used. "
                   "Nothing was changed. Start again from your page.")
    if request.args.get("error"):
        log.info("user %s: %s answered %s", current_user.id, key, error_code(request.args["error"]))
        if request.args["error"] == "access_denied":
            return _back(f"You chose not to connect {network.name}. Nothing was changed.", "info")
        return _back(f"{network.name} did not let the connection go ahead. Nothing was changed.")
    if not request.args.get("code"):
        abort(400, f"{network.name} sent you back without an answer. Nothing was changed. Start again from your page.")
    return _finish(network, request.args["code"], started["verifier"])


def _finish(network: Network, code: str, verifier: str):
    name = network.name
    try:
        oauth = _http().session(network, redirect_uri=callback_url(network.key))
        token = oauth.fetch_token(network.token_url, code=code, code_verifier=verifier)
        userinfo = fetch_userinfo(oauth, network)
        # The network has answered; only now take SQLite's write lock (ending the read that
        # loaded the user), so no lock is held while waiting on the network.
        db.session.commit()
        write_lock(db.session)
        grant = store_grant(db.session, current_app.extensions["ownstory_vault"], current_user.id, network,
                            dict(token), userinfo, utcnow())
        # The owner proved control of the account again: that is their new consent, so a past
        # opt-out of this account no longer stands in their way.
        suppression.lift(db.session, current_app.extensions["ownstory_peppers"], suppression.of_grant(grant))
    except OAuthError as exc:
        log.info("user %s: %s refused the code exchange (%s)", current_user.id, network.key, error_code(exc.error))
        return _back(f"{name} did not accept this connection attempt. Nothing was changed. Please try again.")
    except (requests.ConnectionError, requests.Timeout):
        log.info("user %s: %s could not be reached", current_user.id, network.key)
        return _back(f"{name} could not be reached; nothing was changed. Please try again later.")
    except (requests.RequestException, ValueError) as exc:
        log.info("user %s: %s answered with an error (%s)", current_user.id, network.key, type(exc).__name__)
        return _back(f"{name} answered with an error; nothing was changed. Please try again later.")
    except MissingAccountId:
        log.info("user %s: %s userinfo lacks %s", current_user.id, network.key, network.account_id_field)
        return _back(f"{name} did not tell us which account you connected; nothing was changed.")
    except AccountTaken:
        log.info("user %s: that %s account belongs to another person", current_user.id, network.key)
        return _back(f"That {name} account is already connected to another Ownstory account, so nothing was "
                     "changed. If it is yours, sign in to that account; you can leave from there.")
    except GrantError:
        return _back(f"{name} answered in a way we could not use; nothing was changed.")
    db.session.commit()
    log.info("user %s connected %s", current_user.id, network.key)
    flash(f"Connected {name}. Nothing is shared until you consent to a purpose.", "success")
    return redirect(url_for("consent_pages.consents"))


def callback_url(key: str) -> str:
    """The redirect URI registered with the network: always built from OWNSTORY_BASE_URL."""
    return f"{current_app.config['BASE_URL']}/networks/{key}/callback"


def _network(key: str) -> Network:
    if current_user.role != "person":
        abort(403, "Only people connect networks to their own account.")
    network = current_app.extensions["networks"].get(key)
    if network is None:
        abort(404, "There is no network by that name here.")
    return network


def _http() -> NetworkHttp:
    return current_app.extensions.get("network_http") or NetworkHttp()


def _back(message: str, category: str = "error"):
    db.session.rollback()
    flash(message, category)
    return redirect(url_for("consent_pages.me"))


class RedactOAuthParams(logging.Filter):
    """Werkzeug's access log prints query strings; an OAuth callback's code and state must not appear."""

    PARAMS = re.compile(r"([?&](?:code|state|code_verifier|access_token|refresh_token|token)=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.PARAMS.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = self.PARAMS.sub(r"\1[redacted]", record.msg)
        return True
