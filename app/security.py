"""Secrets at rest: password hashes, API token hashes, and the token vault."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import overload

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

TOKEN_PREFIX = "ows_"  # noqa: S105 (a visible prefix, so leaked tokens are easy to scan for)


class Passwords:
    """argon2id hashing; the cost can be lowered for tests only."""

    def __init__(self, fast: bool = False) -> None:
        self._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1) if fast else PasswordHasher()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def dummy_verify(self) -> None:
        """Spend the same time as a real check, so unknown emails cannot be told apart."""
        self.verify(self._dummy, "not the password")

    @property
    def _dummy(self) -> str:
        if not hasattr(self, "_dummy_hash"):
            self._dummy_hash = self._hasher.hash(secrets.token_hex(8))
        return self._dummy_hash


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Vault:
    """Encrypts OAuth tokens with MultiFernet: the first key encrypts, every key decrypts."""

    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, plaintext: str | None) -> bytes | None:
        return None if plaintext is None else self._fernet.encrypt(plaintext.encode())

    @overload
    def open(self, sealed: bytes) -> str: ...
    @overload
    def open(self, sealed: None) -> None: ...
    @overload
    def open(self, sealed: bytes | None) -> str | None: ...

    def open(self, sealed: bytes | None) -> str | None:
        if sealed is None:
            return None
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            raise VaultError("a stored token cannot be decrypted with the configured OWNSTORY_TOKEN_KEYS") from None

    def rotate(self, sealed: bytes | None) -> bytes | None:
        return None if sealed is None else self._fernet.rotate(sealed)


class VaultError(Exception):
    pass


def hmac_hex(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()
