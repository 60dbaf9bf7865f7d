"""Demo Social's resource indicators (RFC 8707), a strict behaviour behind DEMO_RESOURCES.

DEMO_RESOURCES lists the resources (absolute URIs) Demo Social serves. Empty, the default, ignores
`resource` as a provider without RFC 8707 does. Set, it acts like a provider that binds tokens:
- an authorization or token request naming a resource it does not serve is refused with invalid_target;
- the resources of the authorization request bind the grant (a refresh can never reach past them),
  and each access token is bound to the resources its token request named, or else the grant's:
  introspection shows them as `aud`.
Its own APIs (userinfo, posts) still take a token whatever it is bound to.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from authlib.oauth2 import OAuth2Error
from flask import current_app, request
from sqlalchemy.orm import Session

from .models import Token, TokenResources

MAX_REMEMBERED_CODES = 10_000  # codes live five minutes; a toy provider forgets the oldest past this


class InvalidTarget(OAuth2Error):
    error = "invalid_target"  # RFC 8707 2
    status_code = 400


def served() -> list[str]:
    return list(current_app.config.get("DEMO_RESOURCES") or [])


def asked() -> list[str]:
    """The resources this request names, each one Demo Social serves (else invalid_target)."""
    names = request.values.getlist("resource")
    for name in names:
        if name not in served():
            raise InvalidTarget("This server does not serve that resource.")
    return list(dict.fromkeys(names))


class ResourceIndicators:
    """An Authlib grant extension: checks the resources asked for and decides what the tokens are bound to.

    The binding travels on the OAuth request (`resource_binding`) to save_token, which stores it with bind()."""

    def __init__(self, db: Callable[[], Session]) -> None:
        self.db = db  # this request's session
        self.codes: dict[str, list[str]] = {}  # code -> the resources its authorization request named

    def __call__(self, grant) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.check_authorization)
        grant.register_hook("after_authorization_response", self.remember_code)
        grant.register_hook("before_create_token_response", self.choose)

    def check_authorization(self, _grant, _result) -> None:
        if served():
            asked()  # raises invalid_target, which goes back to the client's callback

    def remember_code(self, _grant, response) -> None:
        code, names = code_of(response), asked() if served() else []
        if code and names:
            self.codes[code] = names
            while len(self.codes) > MAX_REMEMBERED_CODES:
                self.codes.pop(next(iter(self.codes)))

    def choose(self, grant) -> None:
        if not served():
            return
        wanted = asked()
        if grant.GRANT_TYPE == "authorization_code":
            code = request.form.get("code", "")
            granted = self.codes.get(code, [])
        else:
            row: Token = grant.request.refresh_token
            binding = self.db().get(TokenResources, row.id)
            code, granted = "", binding.granted if binding else []
        if granted and not set(wanted) <= set(granted):
            raise InvalidTarget("That resource was not part of the authorization.")
        grant.request.resource_binding = (granted or wanted, wanted or granted)
        self.codes.pop(code, None)  # only now: a refused exchange must not leave the code unbound


def code_of(response) -> str:
    """The code an authorization response sends back, or "" for an error."""
    location = getattr(response, "location", None) or ""
    return parse_qs(urlsplit(location).query).get("code", [""])[0]


def bind(db: Session, row: Token, oauth_request) -> None:
    """Store what the token request decided the authorization's tokens are bound to, if anything."""
    binding = getattr(oauth_request, "resource_binding", None)
    if binding is None:
        return
    db.flush()  # a new row gets its id
    stored = db.get(TokenResources, row.id) or TokenResources(token_id=row.id)
    stored.granted, stored.audience = binding
    db.add(stored)


def audience(db: Session, row: Token, kind: str) -> str | list[str] | None:
    """Introspection's `aud` for a token (RFC 7662: one string, or a list), or None when it is unbound."""
    stored = db.get(TokenResources, row.id)
    names = (stored.audience if kind == "access_token" else stored.granted) if stored else []
    if not names:
        return None
    return names[0] if len(names) == 1 else list(names)
