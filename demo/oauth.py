"""Demo Social's OAuth 2 wiring: Authlib grants, endpoints and the bearer-token guard over demo.models."""

from __future__ import annotations

from dataclasses import dataclass

from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, current_app, g
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import strict_resources as resources
from . import strict_tokens as strict
from .accounts import DemoAccount, find_account
from .models import AuthorizationCode, Client, Token, now

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
TOKEN_KINDS = ("access_token", "refresh_token")


def db() -> Session:
    """This request's session. Holding it serialises database work, which keeps the
    single shared connection of an in-memory SQLite store safe under a threaded server."""
    if "demo_db" not in g:
        state = current_app.extensions["demo"]
        state.db_lock.acquire()
        try:
            g.demo_db = state.sessions()
        except BaseException:
            state.db_lock.release()
            raise
    return g.demo_db


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("demo_db", None)
    if session is not None:
        try:
            session.close()
        finally:
            current_app.extensions["demo"].db_lock.release()


def query_client(client_id: str) -> Client | None:
    return db().scalar(select(Client).where(Client.client_id == client_id))


def save_token(token: dict, request) -> None:
    if request.payload.grant_type == "refresh_token":
        # The refresh token stays put; its authorization gets a new access token in place,
        # so the old access token stops working and revoking the refresh token ends both.
        row: Token = request.refresh_token
        if strict.rotating():
            row.refresh_token = token["refresh_token"]  # the old one no longer finds the row
        row.access_token = token["access_token"]
        row.scope = token.get("scope", row.scope)
        row.issued_at = now()
        row.expires_in = token["expires_in"]
        row.access_token_revoked_at = 0
    else:
        row = Token(
            client_id=request.client.client_id,
            account_id=request.user.account_id,
            token_type=token["token_type"],
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            scope=token.get("scope", ""),
            issued_at=now(),
            expires_in=token["expires_in"],
        )
        db().add(row)
    resources.bind(db(), row, request)
    db().commit()


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def save_authorization_code(self, code: str, request) -> None:
        data = request.payload.data
        db().add(
            AuthorizationCode(
                code=code,
                client_id=request.client.client_id,
                account_id=request.user.account_id,
                redirect_uri=request.payload.redirect_uri or "",
                scope=request.scope,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )
        )
        db().commit()

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        item = db().scalar(
            select(AuthorizationCode).where(
                AuthorizationCode.code == code, AuthorizationCode.client_id == client.client_id
            )
        )
        return item if item and not item.is_expired() else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # A code works once: deleting it makes a replay fail with invalid_grant.
        db().delete(authorization_code)
        db().commit()

    def authenticate_user(self, authorization_code: AuthorizationCode) -> DemoAccount | None:
        return find_account(authorization_code.account_id)


class RequireS256(CodeChallenge):
    """PKCE is mandatory and S256 only: "plain" would let an intercepted code be redeemed."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send a code_challenge.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        super().validate_code_challenge(grant, redirect_uri)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        row = db().scalar(select(Token).where(Token.refresh_token == refresh_token))
        return row if row and not row.refresh_token_revoked_at else None

    def authenticate_user(self, refresh_token: Token) -> DemoAccount | None:
        return find_account(refresh_token.account_id)

    def issue_token(self, user, refresh_token: Token) -> dict:
        token = super().issue_token(user, refresh_token)
        if strict.rotating():
            token["refresh_token"] = generate_token(48)
        else:
            # Echo the unchanged refresh token so clients that overwrite what they stored stay right.
            token["refresh_token"] = refresh_token.refresh_token
        return token

    def revoke_old_credential(self, refresh_token: Token) -> None:
        pass  # save_token already replaced the old access token


@dataclass
class PresentedToken:
    """A token string presented for revocation or introspection: its authorization and which half it is."""

    row: Token
    kind: str  # "access_token" or "refresh_token"

    def check_client(self, client: ClientMixin) -> bool:
        return self.row.check_client(client)

    def get_scope(self) -> str:
        return self.row.scope

    def is_expired(self) -> bool:
        return self.kind == "access_token" and self.row.is_expired()  # refresh tokens do not expire here

    def is_revoked(self) -> bool:
        if self.kind == "refresh_token":
            return bool(self.row.refresh_token_revoked_at)
        return bool(self.row.access_token_revoked_at)


def find_presented(token_string: str, token_type_hint: str | None) -> PresentedToken | None:
    # RFC 7009 2.1: a hint only orders the search; a wrong hint must still find the token.
    for kind in sorted(TOKEN_KINDS, key=lambda kind: kind != token_type_hint):
        row = db().scalar(select(Token).where(getattr(Token, kind) == token_string))
        if row is not None:
            return PresentedToken(row, kind)
    return None


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        return find_presented(token_string, token_type_hint)

    def revoke_token(self, token: PresentedToken, request) -> None:
        strict.refuse_access_token_revocation(token.kind)
        at = now()
        row = token.row
        row.access_token_revoked_at = row.access_token_revoked_at or at
        if token.kind == "refresh_token":
            # Revoking the refresh token ends the whole authorization (RFC 7009 2.1).
            row.refresh_token_revoked_at = row.refresh_token_revoked_at or at
            strict.end_whole_grant(db(), row, at)
        db().commit()


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        return find_presented(token_string, token_type_hint)

    def check_permission(self, token: PresentedToken, client: Client, request) -> bool:
        # A client may look only at its own tokens; others' read as inactive.
        return token.check_client(client)

    def introspect_token(self, token: PresentedToken) -> dict:
        row = token.row
        account = find_account(row.account_id)
        payload = {
            "active": True,
            "scope": row.scope,
            "client_id": row.client_id,
            "sub": row.account_id,
            "username": account.handle if account else None,
        }
        if token.kind == "access_token":
            payload.update(token_type=row.token_type, iat=row.issued_at, exp=row.expires_at)
        aud = resources.audience(db(), row, token.kind)
        if aud is not None:
            payload["aud"] = aud
        return payload


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        return db().scalar(select(Token).where(Token.access_token == token_string))


# Holds no app state (tokens are looked up through db()), so one guard serves every demo app.
require_oauth = ResourceProtector()
require_oauth.register_token_validator(AccessTokenValidator())


def create_authorization_server(app: Flask) -> AuthorizationServer:
    """An Authlib server for this app; it reads the OAUTH2_* settings from app.config."""
    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    indicators = resources.ResourceIndicators(db)
    server.register_grant(AuthorizationCodeGrant, [RequireS256(required=True), indicators])
    server.register_grant(RefreshTokenGrant, [indicators])
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    return server
