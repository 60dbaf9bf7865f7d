"""Grants: storing a connected network account with sealed tokens, refreshing and re-keying them."""
from __future__ import annotations

import datetime as dt
import logging

import requests
from authlib.integrations.base_client import OAuthError
from cryptography.fernet import InvalidToken
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import write_lock
from app.security import Vault, VaultError
from consent.models import Grant
from consent.networks import Network
from consent.oauth import NetworkHttp, error_code

log = logging.getLogger(__name__)

REFRESH_LEEWAY = dt.timedelta(seconds=60)  # refresh a little early: the token must outlive the call it is for
ROTATE_BATCH = 200
MAX_ID = 255  # the width of grants.account_id and grants.handle


class GrantError(Exception):
    """A grant cannot be stored or used. The message never holds a token."""

    def __init__(self, network: str, message: str) -> None:
        super().__init__(f"{network}: {message}")
        self.network = network


class MissingAccountId(GrantError):
    """The network's userinfo answer does not say which account was connected."""


class AccountTaken(GrantError):
    """The network account is already connected to another Ownstory person."""


class ReconnectRequired(GrantError):
    """No usable token is left (no refresh token, or the network refused it): the person connects again."""


class NetworkError(GrantError):
    """The network could not be reached, or answered with an error. Trying later may work."""


def field_value(data: dict, path: str) -> str | None:
    """The text at a dotted path ("data.id") in a JSON object, or None if it is absent or not a scalar."""
    value = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()  # numeric ids (GitHub) become text, as they are stored
    return text or None


def store_grant(session: Session, vault: Vault, user_id: str, network: Network, token: dict, userinfo: dict,
                now: dt.datetime) -> Grant:
    """Record (or renew) the person's connection of one network account. The caller commits.

    A reconnect of the same account by the same person updates the grant in place and keeps its
    granted_at. Raises MissingAccountId, or AccountTaken if another person holds that account.
    """
    account_id = field_value(userinfo, network.account_id_field)
    if account_id is None or len(account_id) > MAX_ID:
        raise MissingAccountId(network.key, f"the userinfo answer has no usable {network.account_id_field!r}")
    if not token.get("access_token"):
        raise NetworkError(network.key, "the token answer holds no access_token")
    grant = session.scalar(select(Grant).where(Grant.network == network.key, Grant.account_id == account_id))
    if grant is not None and grant.user_id != user_id:
        raise AccountTaken(network.key, "this network account is connected to another person")
    is_new = grant is None
    if grant is None:
        grant = Grant(user_id=user_id, network=network.key, account_id=account_id, granted_at=now)
    handle = field_value(userinfo, network.handle_field)
    grant.handle = handle[:MAX_ID] if handle else None
    grant.scopes = _scopes(token, network)
    _put_tokens(vault, grant, token, now)
    if not is_new:
        session.flush()
        return grant
    try:
        # A savepoint: if another request connected the same account a moment ago, the unique
        # constraint stops this insert without spoiling the caller's transaction.
        with session.begin_nested():
            session.add(grant)
            session.flush()
    except IntegrityError:
        taken = select(Grant.id).where(Grant.network == network.key, Grant.account_id == account_id)
        if session.scalar(taken) is None:
            raise  # some other constraint: not the race this retry is for
        return store_grant(session, vault, user_id, network, token, userinfo, now)
    log.info("stored grant %s: network %s, user %s", grant.id, network.key, user_id)
    return grant


def may_revoke_proof_token(session: Session, network: Network, account_id: str | None) -> bool:
    """Whether a token that only proved control of an account (a refused connect, /forget) may be revoked.

    Where revoking ends the whole authorization (revocation.ends_grant), it would also end a member's
    stored grant of that account, which they did not ask for: then the token is dropped unrevoked, and
    the member's own opt-out ends it with their grant. An unknown account may be anyone's, so only a
    network no grant is held for is safe then.
    """
    if not network.revocation.ends_grant:
        return True
    held = select(Grant.id).where(Grant.network == network.key)
    if account_id is not None:
        held = held.where(Grant.account_id == account_id)
    return session.scalar(held.limit(1)) is None


def access_token(session: Session, vault: Vault, grant: Grant, network: Network, now: dt.datetime,
                 http: NetworkHttp) -> str:
    """A usable access token for the grant, refreshed first if it has expired or nearly has.

    New tokens are stored sealed on the grant; the caller should commit soon, because a network
    that rotates refresh tokens has already invalidated the old one. Raises ReconnectRequired or
    NetworkError.
    """
    if not _expiring(grant, now):
        return _open_access(vault, grant, network)
    # Lock the row (PostgreSQL) so that two workers do not both spend the refresh token; then
    # look again, as the other one may have refreshed it meanwhile.
    locked = session.scalars(select(Grant).where(Grant.id == grant.id).with_for_update()
                             .execution_options(populate_existing=True)).one_or_none()
    if locked is None:
        raise ReconnectRequired(network.key, "the grant is gone")
    grant = locked
    if not _expiring(grant, now):
        return _open_access(vault, grant, network)
    refresh = vault.open(grant.refresh_token)
    if not refresh:
        raise ReconnectRequired(network.key, "the access token has expired and there is no refresh token")
    try:
        token = refreshed(network, refresh, http)
    except ReconnectRequired:
        # The network will never take this refresh token again: drop it, so that the grant shows as
        # expired for good (consent.expiry) once its access token has ended. The caller commits.
        grant.refresh_token = None
        session.flush()
        raise
    _put_tokens(vault, grant, token, now)
    if token.get("scope"):
        grant.scopes = _scopes(token, network)
    session.flush()
    log.info("refreshed the access token of grant %s", grant.id)
    return token["access_token"]


def refreshed(network: Network, refresh_token: str, http: NetworkHttp) -> dict:
    """The network's answer to a refresh: new tokens, maybe a rotated refresh token among them.

    The caller stores them at once: a network that rotates refresh tokens has spent the old one.
    Raises ReconnectRequired when the network refuses the refresh token for good, else NetworkError.
    """
    try:
        token = http.session(network).refresh_token(network.token_url, refresh_token=refresh_token,
                                                    **dict(network.token_params))
    except OAuthError as exc:
        log.info("refresh refused at %s: %s", network.key, error_code(exc.error))
        if exc.error in ("invalid_grant", "invalid_token", "unauthorized_client"):
            raise ReconnectRequired(network.key, f"the network refused the refresh token ({exc.error})") from None
        raise NetworkError(network.key, f"the network refused to refresh ({error_code(exc.error)})") from None
    except (requests.RequestException, ValueError) as exc:
        log.info("refresh failed at %s: %s", network.key, type(exc).__name__)
        raise NetworkError(network.key, "the network could not be reached or answered with an error") from None
    if not token.get("access_token"):
        raise NetworkError(network.key, "the refresh answer holds no access_token")
    return dict(token)


def rotate_tokens(session: Session, vault: Vault, batch_size: int = ROTATE_BATCH) -> int:
    """Re-encrypt every grant's tokens under the vault's first key, a batch at a time.

    Returns how many grants held tokens. The caller commits; until then, and after, every key in
    the list still decrypts, so an interrupted run can simply be run again.
    """
    write_lock(session)  # before the first read: on SQLite a transaction that has read cannot safely write
    done, last = 0, ""
    while True:
        rows = session.execute(
            select(Grant.id, Grant.access_token, Grant.refresh_token)
            .where(Grant.id > last).order_by(Grant.id).limit(batch_size)
        ).all()
        if not rows:
            return done
        last = rows[-1].id
        changes = [_rotated(vault, row) for row in rows if row.access_token or row.refresh_token]
        if changes:
            session.execute(update(Grant), changes)  # an ORM bulk UPDATE by primary key
        done += len(changes)


def _rotated(vault: Vault, row) -> dict:
    try:
        return {"id": row.id, "access_token": vault.rotate(row.access_token),
                "refresh_token": vault.rotate(row.refresh_token)}
    except InvalidToken:
        raise VaultError(f"the tokens of grant {row.id} cannot be decrypted with any key of "
                         "OWNSTORY_TOKEN_KEYS; keep the old key in the list") from None


def _put_tokens(vault: Vault, grant: Grant, token: dict, now: dt.datetime) -> None:
    grant.access_token = vault.seal(token["access_token"])
    # Networks often send a refresh token only the first time (Google) or not on refresh: keep the old one.
    if token.get("refresh_token"):
        grant.refresh_token = vault.seal(token["refresh_token"])
    grant.token_type = str(token.get("token_type") or "Bearer")[:32]
    grant.expires_at = expires_at_of(token, now)


def _scopes(token: dict, network: Network) -> str:
    """What the network says it granted, else what was asked for. GitHub separates with commas."""
    raw = token.get("scope")
    if isinstance(raw, str):
        parts = raw.replace(",", " ").split()
    elif isinstance(raw, list | tuple):
        parts = [str(s) for s in raw]
    else:
        parts = []
    return " ".join(parts or network.scopes)


def expires_at_of(token: dict, now: dt.datetime) -> dt.datetime | None:
    # expires_in first: it is relative to the answer, which arrived just now by our clock.
    # Authlib's expires_at was computed from the machine's clock, which tests may not use.
    try:
        if token.get("expires_in") is not None:
            return now + dt.timedelta(seconds=int(token["expires_in"]))
        if token.get("expires_at") is not None:
            return dt.datetime.fromtimestamp(int(token["expires_at"]), dt.UTC)
    except (TypeError, ValueError, OverflowError):
        pass
    return None


def _expiring(grant: Grant, now: dt.datetime) -> bool:
    return expiring(grant.expires_at, now)


def expiring(expires_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether an access token ending at `expires_at` (None: the network did not say) needs a refresh now."""
    return expires_at is not None and expires_at - REFRESH_LEEWAY <= now


def _open_access(vault: Vault, grant: Grant, network: Network) -> str:
    token = vault.open(grant.access_token)
    if not token:
        raise ReconnectRequired(network.key, "the grant holds no access token")
    return token
