"""The owner proof: a secret k, the salt derived from it, and the subject commitment."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

SALT_LABEL = b"ownstory owner salt"


# The verifier's own base64url, for the whole folder: the service's is app/text.py's, but an auditor
# runs this folder alone, with nothing but the standard library and `cryptography`.
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def secret_hash(k: bytes) -> str:
    """What the service keeps of k: enough to recognise the status link, useless to forge one."""
    return hashlib.sha256(k).hexdigest()


def salt(k: bytes) -> bytes:
    return hmac.new(k, SALT_LABEL, hashlib.sha256).digest()


def canonical(identities: list[str]) -> bytes:
    return json.dumps(sorted(identities), separators=(",", ":"), ensure_ascii=False).encode()


def commitment(k: bytes, identities: list[str]) -> str:
    return b64url(hashlib.sha256(salt(k) + canonical(identities)).digest())


def parse_secret(text: str | None) -> bytes | None:
    """k from a status link, or None if it is not 32 bytes of base64url."""
    if not text or len(text) > 64:
        return None
    try:
        k = b64url_decode(text)
    except (ValueError, TypeError):
        return None
    return k if len(k) == 32 else None


BOX_LABEL = b"ownstory owner box"


def _box_key(k: bytes) -> bytes:
    return hmac.new(k, BOX_LABEL, hashlib.sha256).digest()


def seal_for_owner(k: bytes, identities: list[str]) -> bytes:
    """The identity strings, readable only with k: the service never holds k after submission."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_box_key(k)).encrypt(nonce, canonical(identities), b"ownstory owner proof")


def open_for_owner(k: bytes, box: bytes) -> list[str] | None:
    """The identity strings again, or None if k does not open the box."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        plain = AESGCM(_box_key(k)).decrypt(box[:12], box[12:], b"ownstory owner proof")
    except (InvalidTag, ValueError):
        return None
    return json.loads(plain)
