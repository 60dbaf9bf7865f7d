"""Signing keys: the rotating receipt keys (all published in the JWKS) and the long-lived log key."""
from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import OKPKey
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db import utcnow, writing
from app.security import Vault
from app.text import b64url, iso_utc
from erasure.models import SigningKey

RAW = serialization.Encoding.Raw
RECHECK = 1.0  # seconds a process signs with the key it holds before it reads the current kid again


def _new_key(vault: Vault, purpose: str, now: dt.datetime) -> tuple[SigningKey, Ed25519PrivateKey]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    secret = private.private_bytes(RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    row = SigningKey(kid=OKPKey.import_key(private).thumbprint(), purpose=purpose, public_key=public,
                     private_key_sealed=vault.seal(secret.hex()), created_at=now)
    return row, private


@functools.lru_cache(maxsize=64)
def _unsealed(vault: Vault, sealed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vault.open(sealed)))


def private_key(vault: Vault, row: SigningKey) -> Ed25519PrivateKey:
    """The usable key; unsealing costs more than signing, so each sealed key is opened once per process."""
    return _unsealed(vault, row.private_key_sealed)


def in_use(session: Session, purpose: str) -> bool:
    """Whether a key for `purpose` exists yet; reads only."""
    return _current_kid(session, purpose) is not None


@dataclass
class _InUse:
    row: SigningKey  # a detached copy: read only
    private: Ed25519PrivateKey
    checked: float  # time.monotonic() when the database last said it is current


_in_use: dict[tuple[Vault, str], _InUse] = {}  # this process's current key per purpose
_in_use_lock = threading.Lock()


def _current_kid(session: Session, purpose: str) -> str | None:
    """One small read through uq_signing_keys_one_current: how a process sees that another one rotated."""
    return session.scalar(select(SigningKey.kid).where(SigningKey.purpose == purpose,
                                                       SigningKey.retired_at.is_(None)))


def _fresh(vault: Vault, purpose: str) -> _InUse | None:
    """The key this process holds for `purpose`, if the database said it is current less than RECHECK ago."""
    held = _in_use.get((vault, purpose))
    return held if held is not None and time.monotonic() - held.checked < RECHECK else None


def _detached(row: SigningKey) -> SigningKey:
    return SigningKey(kid=row.kid, purpose=row.purpose, public_key=row.public_key,
                      private_key_sealed=row.private_key_sealed, created_at=row.created_at, retired_at=row.retired_at)


def current(session: Session, vault: Vault, purpose: str, now: dt.datetime) -> tuple[SigningKey, Ed25519PrivateKey]:
    """The key in use for `purpose`, made on first need. Two processes racing make one key between them.

    Each process keeps the key it last used, unsealed, and reads only the current key's id, at most once
    every RECHECK seconds, to see whether it still is: `flask keys rotate` in another process is picked up
    within RECHECK, a rotation in this process (rotate) at once. The row returned is a detached copy: read
    it, never write through it.
    """
    held = _fresh(vault, purpose)
    if held is not None:
        return held.row, held.private
    kid = _current_kid(session, purpose)
    if kid is not None:
        return _use(session, vault, purpose, kid)
    row, private = _new_key(vault, purpose, now)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another process made it first: use theirs
        return _use(session, vault, purpose, session.scalars(select(SigningKey.kid).where(
            SigningKey.purpose == purpose, SigningKey.retired_at.is_(None))).one())
    # Made in the caller's transaction, which may yet roll back: the next call reads the kid again.
    return _hold(vault, purpose, row, private, checked=-RECHECK)


def _use(session: Session, vault: Vault, purpose: str, kid: str) -> tuple[SigningKey, Ed25519PrivateKey]:
    """The key `kid`, as this process holds it; read and unsealed only when it is not the one held."""
    held = _in_use.get((vault, purpose))
    if held is not None and held.row.kid == kid:
        held.checked = time.monotonic()
        return held.row, held.private
    row = session.get_one(SigningKey, kid)
    return _hold(vault, purpose, row, private_key(vault, row))


def _hold(vault: Vault, purpose: str, row: SigningKey, private: Ed25519PrivateKey,
          checked: float | None = None) -> tuple[SigningKey, Ed25519PrivateKey]:
    held = _InUse(_detached(row), private, time.monotonic() if checked is None else checked)
    with _in_use_lock:
        _in_use[(vault, purpose)] = held
    return held.row, held.private


def for_service_calls(sessions: sessionmaker[Session], vault: Vault) -> tuple[str, Ed25519PrivateKey]:
    """The current receipt key and its kid, read in a session of its own: it also signs Ownstory's calls to
    the platform's own services (erasure/stores/http_signing.py), which check them against the same JWKS."""
    held = _fresh(vault, "receipt")
    if held is not None:
        return held.row.kid, held.private
    with sessions() as session:
        kid = _current_kid(session, "receipt")
        if kid is not None:
            return kid, _use(session, vault, "receipt", kid)[1]
        with writing(session):  # the first call before any receipt: the key is made now
            row, private = current(session, vault, "receipt", utcnow())
        return row.kid, private


def rotate(session: Session, vault: Vault, now: dt.datetime) -> SigningKey:
    """A new receipt key becomes current; the old one stays published, marked retired. The caller commits."""
    session.execute(update(SigningKey).where(SigningKey.purpose == "receipt", SigningKey.retired_at.is_(None))
                    .values(retired_at=now))
    row, _private = _new_key(vault, "receipt", now)
    session.add(row)
    session.flush()
    with _in_use_lock:  # this process's next receipt reads the new kid, without waiting out RECHECK
        _in_use.pop((vault, "receipt"), None)
    return row


def public_jwk(row: SigningKey) -> dict:
    jwk: dict = {**OKPKey.import_key({"kty": "OKP", "crv": "Ed25519",
                                      "x": b64url(row.public_key)}).as_dict(private=False),
                 "kid": row.kid, "alg": "Ed25519", "use": "sig"}
    if row.retired_at is not None:
        jwk["retired"] = True
        jwk["retired_at"] = iso_utc(row.retired_at)
    return jwk


def jwks(session: Session) -> dict:
    """Every receipt key ever used, oldest first, so any receipt ever issued can be checked."""
    rows = session.scalars(select(SigningKey).where(SigningKey.purpose == "receipt").order_by(SigningKey.created_at))
    return {"keys": [public_jwk(r) for r in rows]}
