"""Demo Social's own tables: OAuth clients, authorization codes and tokens, shaped for Authlib."""

from __future__ import annotations

import secrets
import time

from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    TokenMixin,
    list_to_scope,
    scope_to_list,
)
from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# OAuth speaks in epoch seconds (expires_in, exp, iat), so these tables store them as integers.
CODE_TTL = 300


def now() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    pass


class Client(Base, ClientMixin):
    __tablename__ = "demo_oauth_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), unique=True)
    client_secret: Mapped[str] = mapped_column(String(200))
    client_name: Mapped[str] = mapped_column(String(200), default="")
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40))

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = scope_to_list(self.scope) or []
        if not scope:
            return list_to_scope(allowed)
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact match only, as RFC 9700 asks: no prefix or wildcard matching.
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # One registered method for token, revocation and introspection alike.
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class AuthorizationCode(Base, AuthorizationCodeMixin):
    __tablename__ = "demo_oauth_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    client_id: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[str] = mapped_column(String(40))
    redirect_uri: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[str] = mapped_column(Text, default="")
    code_challenge: Mapped[str | None] = mapped_column(Text)
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    auth_time: Mapped[int] = mapped_column(Integer, default=now)

    def is_expired(self) -> bool:
        return self.auth_time + CODE_TTL < now()

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


class Token(Base, TokenMixin):
    """One authorization: a refresh token that stays, and its current access token."""

    __tablename__ = "demo_oauth_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), index=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    token_type: Mapped[str] = mapped_column(String(40), default="Bearer")
    access_token: Mapped[str] = mapped_column(String(255), unique=True)
    refresh_token: Mapped[str | None] = mapped_column(String(255), unique=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[int] = mapped_column(Integer, default=now)
    expires_in: Mapped[int] = mapped_column(Integer)
    access_token_revoked_at: Mapped[int] = mapped_column(Integer, default=0)
    refresh_token_revoked_at: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def expires_at(self) -> int:
        return self.issued_at + self.expires_in

    def check_client(self, client: ClientMixin) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return self.expires_at <= now()

    def is_revoked(self) -> bool:
        return bool(self.access_token_revoked_at)


class TokenResources(Base):
    """The resources (RFC 8707) one authorization is bound to. A table of its own, so that a store made
    before it existed gains it from create_all."""

    __tablename__ = "demo_oauth_token_resources"

    token_id: Mapped[int] = mapped_column(ForeignKey("demo_oauth_token.id", ondelete="CASCADE"), primary_key=True)
    granted: Mapped[list[str]] = mapped_column(JSON, default=list)  # what the authorization asked for: the ceiling
    audience: Mapped[list[str]] = mapped_column(JSON, default=list)  # what the current access token is for
