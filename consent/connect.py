"""Connecting a network: OAuth authorization code with state and PKCE (S256), ending in a stored grant."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable

from flask import Blueprint, Flask, abort, current_app, flash, redirect, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import logging as app_logging
from app.db import utcnow
from app.extensions import db
from app.models import User
from consent import account_control, suppression
from consent.grants import AccountTaken, GrantError, may_revoke_proof_token, store_grant
from consent.networks import Network
from consent.oauth import NetworkHttp

bp = Blueprint("networks", __name__)
log = logging.getLogger(__name__)

PENDING = "networks_oauth"  # session key: {network key: {"state": ..., "verifier": ...}}, one flow per network
CONTROL = account_control.AccountControl(PENDING, "/networks/{key}/callback", back_to="consent_pages.me")
DISCARDER = "ownstory_token_discarder"  # app.extensions key: (network, token, account_id) -> None
CLOSING = ("You have asked to leave everything, so this account is closing and connects no network. "
           "Nothing was connected. You can sign up again with the same email whenever you like.")

TokenDiscarder = Callable[[Network, dict, str], None]


class AccountClosing(Exception):
    """The person asked to leave everything: no new grant may come in behind the opt-out."""


def init_app(app: Flask) -> None:
    """The outbound HTTP client for the views, and a log filter that keeps codes out of access logs."""
    app.extensions.setdefault("network_http", NetworkHttp())
    RedactOAuthParams.install(("werkzeug",))


def register_token_discarder(app: Flask, discard: TokenDiscarder) -> None:
    """How a token is handed back to its network when a connect is refused after the network gave it.

    Revoking is erasure's (erasure.engine.revocation), which consent must not import: erasure registers it.
    """
    app.extensions[DISCARDER] = discard


def account_closing(session: Session, user_id: str) -> bool:
    """Whether the account is closing (its owner asked to leave everything) or gone.

    Locks the user's row on PostgreSQL until the transaction ends, so that a connect and an opt-out of
    everything are one before the other: either the opt-out sees the new grant and revokes it, or the
    connect sees the account closing. (SQLite's write lock, which the caller holds, does the same.)
    """
    closed_at = session.execute(select(User.closed_at).where(User.id == user_id).with_for_update()).first()
    return closed_at is None or closed_at[0] is not None


@bp.post("/networks/<key>/connect")
@login_required
def connect(key: str):
    network = _network(key)
    if current_user.closed_at is not None:
        log.info("user %s: a connect to %s refused, the account is closing", current_user.id, key)
        return CONTROL.back(CLOSING)
    url = CONTROL.start(network)
    log.info("user %s is connecting %s", current_user.id, key)
    return redirect(url, code=303)


@bp.get("/networks/<key>/callback")
@login_required
def callback(key: str):
    network = _network(key)
    name = network.name
    if current_user.closed_at is not None:  # checked before the code is exchanged: no token is made
        log.info("user %s: a connect to %s refused at its callback, the account is closing", current_user.id, key)
        return CONTROL.back(CLOSING)
    try:
        proven = CONTROL.finish(network)
    except account_control.WrongState:
        log.warning("connect callback for %s with a missing or wrong state (user %s)", key, current_user.id)
        abort(400, f"This connection to {name} did not start here or has already been used. "
                   "Nothing was changed. Start again from your page.")
    except account_control.WrongIssuer:
        log.warning("connect callback for %s names another issuer (user %s)", key, current_user.id)
        abort(400, f"This answer did not come from {name}, so it was not used and nothing was changed. "
                   "Start again from your page.")
    except account_control.Declined as answer:
        log.info("user %s: %s answered %s", current_user.id, key, answer.code)
        if answer.denied:
            return CONTROL.back(f"You chose not to connect {name}. Nothing was changed.", "info")
        return CONTROL.back(f"{name} did not let the connection go ahead. Nothing was changed.")
    except account_control.NoCode:
        abort(400, f"{name} sent you back without an answer. Nothing was changed. Start again from your page.")
    except account_control.ControlError as exc:
        # Whatever went wrong after the network handed over tokens, none may stay live behind us.
        _discard(network, exc.token, None)
        return _refused(network, exc)
    return _store(network, proven)


def _refused(network: Network, exc: account_control.ControlError):
    """The page for a flow that failed at the network, or in what it answered."""
    key, name = network.key, network.name
    if isinstance(exc, account_control.Refused):
        log.info("user %s: %s refused the code exchange (%s)", current_user.id, key, exc.code)
        return CONTROL.back(f"{name} did not accept this connection attempt. Nothing was changed. Please try again.")
    if isinstance(exc, account_control.Unreachable):
        log.info("user %s: %s could not be reached", current_user.id, key)
        return CONTROL.back(f"{name} could not be reached; nothing was changed. Please try again later.")
    if isinstance(exc, account_control.NoAccountId):
        log.info("user %s: %s userinfo lacks %s", current_user.id, key, network.account_id_field)
        return CONTROL.back(f"{name} did not tell us which account you connected; nothing was changed.")
    log.info("user %s: %s answered with an error (%s)", current_user.id, key,
             exc.kind if isinstance(exc, account_control.ErrorAnswer) else type(exc).__name__)
    return CONTROL.back(f"{name} answered with an error; nothing was changed. Please try again later.")


def _store(network: Network, proven: account_control.Proven):
    name = network.name
    try:
        # The network has answered; only now take SQLite's write lock (ending the read that
        # loaded the user), so no lock is held while waiting on the network.
        with db.writing():
            if account_closing(db.session, current_user.id):
                raise AccountClosing()
            grant = store_grant(db.session, current_app.extensions["ownstory_vault"], current_user.id, network,
                                proven.token, proven.userinfo, utcnow())
            # The owner proved control of the account again: that is their new consent, so a past
            # opt-out of this account no longer stands in their way.
            suppression.lift(db.session, current_app.extensions["ownstory_peppers"], suppression.of_grant(grant))
    except AccountClosing:
        # The opt-out came in while the person was at the network: the token it just gave goes back now.
        log.info("user %s: a connect to %s refused, the account closed while at the network", current_user.id,
                 network.key)
        _discard(network, proven.token, proven.account_id)
        return CONTROL.back(CLOSING)
    except AccountTaken:
        log.info("user %s: that %s account belongs to another person", current_user.id, network.key)
        _discard(network, proven.token, proven.account_id)
        return CONTROL.back(f"That {name} account is already connected to another Ownstory account, so nothing "
                            "was changed. If it is yours, sign in to that account; you can leave from there.")
    except GrantError:
        _discard(network, proven.token, proven.account_id)
        return CONTROL.back(f"{name} answered in a way we could not use; nothing was changed.")
    log.info("user %s connected %s", current_user.id, network.key)
    flash(f"Connected {name}. Nothing is shared until you consent to a purpose.", "success")
    return redirect(url_for("consent_pages.consents"))


def _discard(network: Network, token: dict, account_id: str | None) -> None:
    """Hand back at once a token this connect will not keep (nothing of it shows on the page)."""
    if not token:
        return
    may_revoke = may_revoke_proof_token(db.session, network, account_id)
    db.session.rollback()  # no read stays open (SQLite's lock) while waiting on the network
    if not may_revoke:
        log.info("a refused connect's token at %s was dropped unrevoked: a member holds its grant", network.key)
        return
    discard = current_app.extensions.get(DISCARDER)
    if discard is None:
        log.warning("no token discarder is registered: the token from %s was dropped unrevoked", network.key)
        return
    discard(network, token, account_id or "")


def _network(key: str) -> Network:
    if current_user.role != "person":
        abort(403, "Only people connect networks to their own account.")
    return CONTROL.network(key)


class RedactOAuthParams(app_logging.RedactMatches):
    """Werkzeug's access log prints query strings; an OAuth callback's code and state must not appear."""

    PATTERN = re.compile(r"([?&](?:code|state|code_verifier|access_token|refresh_token|token)=)[^&\s\"]*")
