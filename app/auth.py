"""Who is asking: people by session cookie on pages, programs by bearer token on the API."""
from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass

from flask import current_app, session
from flask_login import current_user
from flask_smorest import Blueprint
from sqlalchemy import bindparam, or_, select, update

from app.db import utcnow
from app.errors import ApiError
from app.extensions import db, is_api_request, login_manager
from app.models import ApiToken, User
from app.openapi import BEARER, ROLES
from app.security import token_hash

log = logging.getLogger(__name__)


@dataclass
class TokenPrincipal:
    """A program calling the API with a bearer token."""

    token_id: str
    name: str
    role: str
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:  # never stored in a session: API calls carry no cookie
        return f"token:{self.token_id}"


USE_RECORDED_EVERY = dt.timedelta(minutes=1)  # how fresh a token's "last used" is kept
SESSION_VERSION = "session_version"  # the session cookie's copy of the account's, taken at sign-in


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The signed-in person, if the cookie is still good: signing out or leaving raises the account's
    session version, and every cookie issued before then (a copy taken from the browser too) opens nothing."""
    if is_api_request():
        return None  # the API never authenticates by cookie
    user = db.session.get(User, user_id)
    if user is None or session.get(SESSION_VERSION) != user.session_version:
        return None
    return user


_TOKEN_BY_HASH = select(ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.last_used_at).where(
    ApiToken.token_hash == bindparam("hash"), ApiToken.revoked_at.is_(None))


@login_manager.request_loader
def load_token(req) -> TokenPrincipal | None:
    if not is_api_request():
        return None
    header = req.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    # Core, not the ORM: every API call makes this read, and nothing here changes the token.
    token = db.session.connection().execute(_TOKEN_BY_HASH, {"hash": token_hash(value.strip())}).first()
    if token is None:
        log.info("API call with an unknown or revoked bearer token")
        return None
    principal, now = TokenPrincipal(token.id, token.name, token.role), utcnow()
    if token.last_used_at is None or now - token.last_used_at >= USE_RECORDED_EVERY:
        _record_use(token.id, now)
    return principal


def _record_use(token_id: str, now: dt.datetime) -> None:
    """Note when a token was last used, in a short write of its own.

    The read above ran in a read transaction; upgrading it to a write would make SQLite answer
    "database is locked" under concurrent calls, so it ends first and the write takes the lock up front.
    At most once a minute a token: a busy program's calls should not all queue on one row.
    """
    with db.writing():
        db.session.execute(update(ApiToken).where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - USE_RECORDED_EVERY),
        ).values(last_used_at=now))


def api_roles(*roles: str):
    """Guard an API view: 401 without a valid bearer token, 403 for any other role."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                if session.get("_user_id"):
                    raise ApiError(403, "forbidden", "The API takes a bearer token, not a signed-in session.")
                raise ApiError(401, "unauthenticated", "A valid bearer token is required.")
            if current_user.role not in roles:
                raise ApiError(403, "forbidden", "This token's role may not call this endpoint.")
            return view(*args, **kwargs)

        return wrapped

    return decorate


def bearer(*roles: str):
    """Only bearer tokens of these roles may call the view (api_roles), and the OpenAPI document says so.

    Goes where api_roles would: below route, above arguments, so a caller without the role is refused
    before its body is read.
    """

    def decorate(view):
        return Blueprint.doc(security=[{BEARER: []}], **{ROLES: list(roles)})(api_roles(*roles)(view))

    return decorate


def anyone(view):
    """The view takes no credentials: the document says security: [] rather than leaving it unsaid."""
    return Blueprint.doc(security=[], **{ROLES: []})(view)


def passwords():
    return current_app.extensions["ownstory_passwords"]
