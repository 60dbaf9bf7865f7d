"""Proving control of a network account: OAuth's authorization code flow with state and PKCE (S256).

Connecting a network (consent/connect.py) and leaving without an account (/forget) both run it. Each
names its own session key, callback path and page to go back to, and decides what the proven account
is for and what the person reads when it fails: `finish` raises one ControlError subclass per failure.
This is a helper for views: it reads the browser's session and the callback's query.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from flask import abort, current_app, flash, redirect, request, session, url_for

from app.extensions import db
from consent.grants import MAX_ID, field_value
from consent.networks import Network
from consent.oauth import NetworkHttp, error_code, fetch_userinfo


@dataclass(frozen=True)
class Proven:
    """The account the person showed is theirs, and what the network handed over to show it."""

    account_id: str
    handle: str | None  # at most MAX_ID characters
    token: dict
    userinfo: dict


class ControlError(Exception):
    """Control was not proven. `token` is what the network handed over all the same ({} if nothing),
    for the caller to discard."""

    def __init__(self, token: dict | None = None) -> None:
        super().__init__(type(self).__name__)
        self.token = token or {}


class WrongState(ControlError):
    """The callback's state is missing or wrong: the flow did not start in this browser, or was used already."""


class WrongIssuer(ControlError):
    """The answer names another issuer than the network's, or none where the network always names one
    (RFC 9207): it may come from another provider (a mix-up), so its code is never exchanged."""


class Declined(ControlError):
    """The network sent the person back with an error instead of a code."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.code = error_code(error)  # fit for a log line
        self.denied = error == "access_denied"  # the person said no


class NoCode(ControlError):
    """The network sent the person back with neither a code nor an error."""


class Refused(ControlError):
    """The network refused the code exchange (an OAuth error)."""

    def __init__(self, token: dict, error) -> None:
        super().__init__(token)
        self.code = error_code(error)


class Unreachable(ControlError):
    """The network could not be reached, or did not answer in time."""


class ErrorAnswer(ControlError):
    """The network answered with an HTTP error, or with something that is not what was asked for."""

    def __init__(self, token: dict, kind: str) -> None:
        super().__init__(token)
        self.kind = kind  # the exception's class name, fit for a log line


class NoAccountId(ControlError):
    """The network's userinfo does not say which account signed in."""


class AccountControl:
    """One use of the flow: the session key its pending starts are kept under ({network key: {"state",
    "verifier"}}, one flow per network), the path its callbacks come back to, and the endpoint back() goes back
    to (None where the caller's pages answer a failure themselves)."""

    def __init__(self, session_key: str, callback_path: str, back_to: str | None = None) -> None:
        self.session_key = session_key
        self.callback_path = callback_path  # with {key} for the network's key
        self.back_to = back_to

    def network(self, key: str) -> Network:
        network = current_app.extensions["networks"].get(key)
        if network is None:
            abort(404, "There is no network by that name here.")
        return network

    def callback_url(self, key: str) -> str:
        """The redirect URI registered with the network: always built from OWNSTORY_BASE_URL."""
        return current_app.config["BASE_URL"] + self.callback_path.format(key=key)

    def start(self, network: Network) -> str:
        """Begin at the network: the URL to send the browser to, with state and an S256 challenge."""
        verifier = generate_token(64)  # PKCE: 64 characters of [A-Za-z0-9], within RFC 7636's 43..128
        oauth = http().session(network, redirect_uri=self.callback_url(network.key))
        url, state = oauth.create_authorization_url(network.authorize_url, code_verifier=verifier,
                                                    scope=network.scope, **dict(network.authorize_params))
        # The verifier stays in the signed session cookie, as Authlib's own Flask client keeps it:
        # only this browser can finish the flow, and an intercepted code is useless without it.
        session[self.session_key] = {**session.get(self.session_key, {}),
                                     network.key: {"state": state, "verifier": verifier}}
        return url

    def finish(self, network: Network) -> Proven:
        """Check the callback, exchange its code and read the userinfo. Raises a ControlError."""
        pending = dict(session.get(self.session_key, {}))
        started = pending.pop(network.key, None)  # single use, whatever happens next
        session[self.session_key] = pending
        state = request.args.get("state", "")
        if not started or not state or not hmac.compare_digest(state.encode(), started["state"].encode()):
            raise WrongState()
        if not issued_by(network, request.args.get("iss")):  # errors too: RFC 9207 covers every response
            raise WrongIssuer()
        if request.args.get("error"):
            raise Declined(request.args["error"])
        if not request.args.get("code"):
            raise NoCode()
        token: dict = {}
        try:
            oauth = http().session(network, redirect_uri=self.callback_url(network.key))
            token = dict(oauth.fetch_token(network.token_url, code=request.args["code"],
                                           code_verifier=started["verifier"], **dict(network.token_params)))
            userinfo = fetch_userinfo(oauth, network)
        except OAuthError as exc:
            raise Refused(token, exc.error) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Unreachable(token) from exc
        except (requests.RequestException, ValueError) as exc:
            raise ErrorAnswer(token, type(exc).__name__) from exc
        account_id = field_value(userinfo, network.account_id_field)
        if account_id is None or len(account_id) > MAX_ID:
            raise NoAccountId(token)
        handle = field_value(userinfo, network.handle_field)
        return Proven(account_id, handle[:MAX_ID] if handle else None, token, userinfo)

    def back(self, message: str, category: str = "error"):
        """Nothing was changed: undo what the request began, say why, and go back."""
        if self.back_to is None:
            raise TypeError("this flow has no page to go back to")
        db.session.rollback()
        flash(message, category)
        return redirect(url_for(self.back_to))


def issued_by(network: Network, iss: str | None) -> bool:
    """Whether an authorization response with this `iss` can be the network's own (RFC 9207 2.4).

    Without a configured issuer there is nothing to compare with; a network that always sends iss
    (authorization_response_iss_parameter_supported) must have sent it."""
    if iss is None:
        return not network.iss_required
    return not network.issuer or hmac.compare_digest(iss.encode(), network.issuer.encode())


def http() -> NetworkHttp:
    """The app's outbound HTTP client for the networks (tests set their own timeouts)."""
    return current_app.extensions.get("network_http") or NetworkHttp()
