"""When a grant has expired for good: its access token has ended and no refresh token can renew it."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, and_

from consent.models import Grant


def expired_for_good(before: dt.datetime) -> ColumnElement[bool]:
    """Grants whose access token ended before `before` with no refresh token left.

    A refresh token the network refused (invalid_grant) is dropped from the grant when it is refused
    (grants.access_token), so this one rule covers both: never given one, and given one that died.
    """
    return and_(Grant.refresh_token.is_(None), Grant.expires_at.is_not(None), Grant.expires_at < before)


def has_expired_for_good(grant: Grant, now: dt.datetime) -> bool:
    """The same rule for one loaded grant: only connecting again gives the platform access."""
    return grant.refresh_token is None and grant.expires_at is not None and grant.expires_at < now
