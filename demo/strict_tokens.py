"""Demo Social's strict token behaviours, each behind a flag in app.config, so tests can act like certified providers.

They are read per request, so a test may switch one on for a while on a server that is already running.
- DEMO_REVOKE_ENDS_GRANT: revoking a refresh token ends every authorization the client holds for that
  account (RFC 7009 2.1 allows it), not only the one the token belongs to.
- DEMO_ACCESS_TOKEN_REVOCATION_UNSUPPORTED: access tokens cannot be revoked here (as with JWT access
  tokens): revoking one answers 400 unsupported_token_type (RFC 7009 2.2.1).
- DEMO_ROTATE_REFRESH_TOKENS: every refresh answers with a new refresh token, and the old one stops working.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from flask import current_app
from sqlalchemy import update
from sqlalchemy.orm import Session

from .models import Token

FLAGS = ("DEMO_REVOKE_ENDS_GRANT", "DEMO_ACCESS_TOKEN_REVOCATION_UNSUPPORTED", "DEMO_ROTATE_REFRESH_TOKENS")


def on(flag: str) -> bool:
    return bool(current_app.config.get(flag))


class UnsupportedTokenType(OAuth2Error):
    error = "unsupported_token_type"
    status_code = 400  # RFC 7009 2.2.1, unlike Authlib's own class (a 401)


def refuse_access_token_revocation(kind: str) -> None:
    if kind == "access_token" and on("DEMO_ACCESS_TOKEN_REVOCATION_UNSUPPORTED"):
        raise UnsupportedTokenType("This server cannot revoke access tokens.")


def end_whole_grant(db: Session, row: Token, at: int) -> None:
    """Revoke every token the client holds for the account, when the flag says revoking ends the grant."""
    if not on("DEMO_REVOKE_ENDS_GRANT"):
        return
    same = (Token.client_id == row.client_id) & (Token.account_id == row.account_id)
    db.execute(update(Token).where(same, Token.access_token_revoked_at == 0).values(access_token_revoked_at=at))
    db.execute(update(Token).where(same, Token.refresh_token_revoked_at == 0).values(refresh_token_revoked_at=at))


def rotating() -> bool:
    return on("DEMO_ROTATE_REFRESH_TOKENS")

