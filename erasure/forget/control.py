"""Proofs of control for /forget: the one-time email link, and the short-lived proof a session holds."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from consent.suppression import Identity
from erasure.models import EmailProof

log = logging.getLogger(__name__)

LINK_TTL = dt.timedelta(minutes=10)  # the ceiling for an email link
PROOF_TTL = dt.timedelta(minutes=30)  # how long a proven identity may be used to export or opt out
BOX_LABEL = b"ownstory forget email"
PROOF_KINDS = ("email", "account", "handle")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_email_link(session: Session, address: str, now: dt.datetime) -> str:
    """Record a one-time link for the address and return its token, to be mailed and then forgotten.

    Links that have run out are deleted on the way, so the table holds only live ones. The caller commits.
    """
    session.execute(delete(EmailProof).where(EmailProof.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session.add(EmailProof(token_hash=token_hash(token), address_box=_seal(token, address),
                           created_at=now, expires_at=now + LINK_TTL))
    session.flush()
    return token


def link_usable(session: Session, token: str, now: dt.datetime) -> bool:
    """Whether a link can still be used. Reading it changes nothing: mail scanners open links."""
    if not _plausible(token):
        return False
    found = session.scalar(select(EmailProof.id).where(
        EmailProof.token_hash == token_hash(token), EmailProof.used_at.is_(None), EmailProof.expires_at > now))
    return found is not None


def use_email_link(session: Session, token: str, now: dt.datetime) -> str | None:
    """Spend the link and return its address; None if it is unknown, used or expired (all look alike).

    The conditional UPDATE makes it single-use even when two requests race. The caller commits.
    """
    if not _plausible(token):
        return None
    digest = token_hash(token)
    spent = cast(CursorResult[Any], session.execute(
        update(EmailProof)
        .where(EmailProof.token_hash == digest, EmailProof.used_at.is_(None), EmailProof.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )).rowcount
    if spent != 1:
        return None
    box = session.scalar(select(EmailProof.address_box).where(EmailProof.token_hash == digest))
    return _open(token, box) if box is not None else None


def _plausible(token: str) -> bool:
    return isinstance(token, str) and 20 <= len(token) <= 64


def _box_key(token: str) -> bytes:
    return hmac.new(token.encode(), BOX_LABEL, hashlib.sha256).digest()


def _seal(token: str, address: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_box_key(token)).encrypt(nonce, address.encode(), BOX_LABEL)


def _open(token: str, box: bytes) -> str | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(_box_key(token)).decrypt(box[:12], box[12:], BOX_LABEL).decode()
    except (InvalidTag, ValueError):
        log.warning("an email proof could not be opened with its own token")
        return None


@dataclass(frozen=True)
class ForgetProof:
    """Identities a visitor just proved control of, held in their signed session cookie for a while.

    `via` says how: a network key (OAuth) or "email". Nothing of it is stored on the server.
    """

    identities: tuple[Identity, ...]
    via: str
    expires_at: dt.datetime

    @property
    def email(self) -> str | None:
        return next((i.value for i in self.identities if i.kind == "email"), None)

    def to_session(self) -> dict:
        return {"ids": [[i.kind, i.value, i.network] for i in self.identities], "via": self.via,
                "exp": int(self.expires_at.timestamp())}


def new_proof(identities: list[Identity], via: str, now: dt.datetime) -> ForgetProof:
    return ForgetProof(tuple(identities), via, now + PROOF_TTL)


def proof_from_session(raw, now: dt.datetime) -> ForgetProof | None:
    """The session's proof if it is well formed and still valid, else None."""
    try:
        ids = tuple(Identity(kind, value, network) for kind, value, network in raw["ids"])
        expires = dt.datetime.fromtimestamp(int(raw["exp"]), dt.UTC)
        via = str(raw["via"])
    except (TypeError, KeyError, ValueError, OverflowError):
        return None
    if not ids or expires <= now or any(i.kind not in PROOF_KINDS or not isinstance(i.value, str) for i in ids):
        return None
    return ForgetProof(ids, via, expires)
