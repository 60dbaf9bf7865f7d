"""DRP 1.0's signed messages (section 3.07): base64 of an Ed25519 signature followed by the JSON it signs.

The checks run in the specification's order: the body decodes, the signature verifies with the agent's key,
the message names that agent and this business, and the present lies between issued-at and expires-at.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNATURE_BYTES = 64
MAX_VALIDITY = dt.timedelta(minutes=15)  # a longer window is refused: the message could be kept and replayed
CLOCK_SKEW = dt.timedelta(seconds=60)  # an agent's clock a little ahead of ours is not a forgery
VERSION = "1.0"
ENVELOPE = {"agent-id", "business-id", "issued-at", "expires-at"}


class MessageError(Exception):
    """A signed message refused; `status` is the HTTP status, the message says why (never echoing the body)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class SignedMessage:
    claims: dict
    digest: str  # SHA-256 of the decoded bytes: the replay check's key
    expires_at: dt.datetime


def decode(body: bytes) -> tuple[bytes, bytes]:
    """The signature and the signed JSON bytes of a request body. Raises MessageError (400)."""
    try:
        raw = base64.b64decode(body.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MessageError(400, "The body is not base64: send the signed message as text/plain.") from None
    if len(raw) <= SIGNATURE_BYTES:
        raise MessageError(400, "The body is too short to hold an Ed25519 signature and a message.")
    return raw[:SIGNATURE_BYTES], raw[SIGNATURE_BYTES:]


def verify(signature: bytes, message: bytes, verify_key: bytes) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(verify_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise MessageError(403, "The signature does not verify with the agent's key.") from None


def open_message(body: bytes, verify_key: bytes, *, agent_id: str, business_id: str, now: dt.datetime,
                 envelope: bool = True) -> SignedMessage:
    """Check a signed message for this agent and this business, at this moment. Raises MessageError.

    `envelope=False` is for the revoke, whose body the specification gives as `{"reason"}` alone: its
    agent-id, business-id and times are checked only when it carries them.
    """
    signature, message = decode(body)
    verify(signature, message, verify_key)
    try:
        claims = json.loads(message.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MessageError(400, "The signed message is not JSON.") from None
    if not isinstance(claims, dict):
        raise MessageError(400, "The signed message is not a JSON object.")
    if not envelope and not ENVELOPE & set(claims):
        return SignedMessage(claims, hashlib.sha256(message).hexdigest(), now + MAX_VALIDITY)
    if claims.get("agent-id") != agent_id:
        raise MessageError(403, "The message's agent-id is not the agent of this token.")
    if claims.get("business-id") != business_id:
        raise MessageError(403, "The message's business-id is not this business.")
    issued, expires = _time(claims, "issued-at"), _time(claims, "expires-at")
    if expires <= issued:
        raise MessageError(400, "expires-at is not after issued-at.")
    if expires - issued > MAX_VALIDITY:
        raise MessageError(400, f"The message is valid for more than {MAX_VALIDITY.seconds // 60} minutes.")
    if now + CLOCK_SKEW < issued:
        raise MessageError(400, "issued-at is in the future: check the agent's clock.")
    if now >= expires:
        raise MessageError(400, "The message has expired (expires-at is past).")
    return SignedMessage(claims, hashlib.sha256(message).hexdigest(), expires)


def _time(claims: dict, name: str) -> dt.datetime:
    value = claims.get(name)
    if not isinstance(value, str) or len(value) > 64:
        raise MessageError(400, f"{name} is missing or is not an ISO 8601 timestamp.")
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise MessageError(400, f"{name} is not an ISO 8601 timestamp.") from None
    # A time without a zone is read as UTC, the protocol's examples' zone.
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
