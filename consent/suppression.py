"""The suppression list: identities whose owner opted out, kept only as keyed HMACs."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from sqlalchemy import CursorResult, delete, select, tuple_
from sqlalchemy.orm import Session

from app.db import expire_written_past, table_of, upsert
from consent import check_statements
from consent.models import Suppression

KINDS = ("email", "account", "handle", "subject")


@dataclass(frozen=True)
class Identity:
    kind: str  # email | account | handle | subject (Ownstory's own id for the person)
    value: str
    network: str | None = None

    def canonical(self) -> str:
        """The string form of owner proofs: email:<email>, account:<network>:<id>, handle:<network>:<handle>."""
        return canonical(self.kind, self.value, self.network)


def canonical(kind: str, value: str, network: str | None) -> str:
    """Identity.canonical without making an Identity: the consent check makes thousands a batch."""
    if kind == "email":
        return f"email:{value.strip().lower()}"
    if kind == "subject":
        return f"subject:{value}"
    return f"{kind}:{network}:{value}"


class Peppers:
    """The HMAC keys: the first makes new entries, every one is checked, so the pepper can rotate."""

    def __init__(self, peppers: Sequence[str]) -> None:
        self._keys = [(hashlib.sha256(p.encode()).hexdigest()[:16], p.encode()) for p in peppers]

    @classmethod
    def from_config(cls, raw: str) -> Peppers:
        return cls([p.strip() for p in raw.split(",") if p.strip()])

    def current(self, identity: Identity) -> tuple[str, str]:
        key_id, key = self._keys[0]
        return key_id, _digest(key, identity)

    def all(self, identity: Identity) -> list[tuple[str, str]]:
        return [(key_id, _digest(key, identity)) for key_id, key in self._keys]

    def digesters(self) -> list[tuple[str, Callable[[list[bytes]], list[str]]]]:
        """Per pepper, its id and what makes the digests of many canonical identities: for a batch of thousands."""
        return [(key_id, _digester(key)) for key_id, key in self._keys]


def _digest(key: bytes, identity: Identity) -> str:
    return _digest_text(key, identity.canonical())


def _digest_text(key: bytes, canonical: str) -> str:
    return hmac.digest(key, canonical.encode(), "sha256").hex()


def _digester(key: bytes) -> Callable[[list[bytes]], list[str]]:
    """_digest_text for many identities at once (a consent check asks about a thousand a batch): the key is set
    up once and copied for each. cryptography's HMAC, not the standard library's: the same digest, and its copy
    is one call into compiled code, where hmac.HMAC.copy builds a Python object around it (half the CPU, measured)."""
    keyed = crypto_hmac.HMAC(key, hashes.SHA256())

    def digests(canonicals: list[bytes]) -> list[str]:
        made = []
        copy = keyed.copy
        for text in canonicals:
            one = copy()
            one.update(text)
            made.append(one.finalize().hex())
        return made
    return digests


def of_grant(grant) -> list[Identity]:
    """The identities a connected network account carries."""
    found = [Identity("account", grant.account_id, grant.network)]
    if grant.handle:
        found.append(Identity("handle", grant.handle, grant.network))
    return found


def suppress(session: Session, peppers: Peppers, identities: Iterable[Identity], scope: str,
             request_id: str | None, show_opted_out: bool = True) -> None:
    """Add entries, idempotently, in one statement: an identity already listed under the current pepper is
    updated to this opt-out's scope and request. Entries of the session's loaded before are read again."""
    rows: dict[tuple[str, str], dict] = {}
    for identity in identities:
        key_id, digest = peppers.current(identity)
        # one row per entry: an upsert may not meet the same row twice
        rows[(key_id, digest)] = {"key_id": key_id, "digest": digest, "kind": identity.kind, "scope": scope,
                                  "request_id": request_id, "show_opted_out": show_opted_out}
    if not rows:
        return
    session.execute(upsert(table_of(Suppression), ("key_id", "digest"),
                           ("scope", "request_id", "show_opted_out"), session.get_bind().dialect.name),
                    list(rows.values()))
    expire_written_past(session, Suppression)  # a lookup earlier in the transaction loaded the old values


def lift(session: Session, peppers: Peppers, identities: Iterable[Identity]) -> int:
    """The owner came back and connected the identity again: that is their new consent."""
    pairs = [pair for identity in identities for pair in peppers.all(identity)]
    if not pairs:
        return 0
    return cast(CursorResult[Any], session.execute(
        delete(Suppression).where(tuple_(Suppression.key_id, Suppression.digest).in_(pairs))
    )).rowcount


def lookup(session: Session, peppers: Peppers, identities: Sequence[Identity]) -> list[Suppression | None]:
    """The entry for each identity, in order, with one query whatever the number of identities."""
    by_pair: dict[tuple[str, str], list[int]] = {}
    for i, identity in enumerate(identities):
        for pair in peppers.all(identity):
            by_pair.setdefault(pair, []).append(i)  # the same identity may be asked twice
    found: list[Suppression | None] = [None] * len(identities)
    if not by_pair:
        return found
    rows = session.scalars(
        select(Suppression).where(tuple_(Suppression.key_id, Suppression.digest).in_(list(by_pair)))
    )
    for row in rows:
        for i in by_pair[(row.key_id, row.digest)]:
            found[i] = row
    return found


def consent_seam(peppers: Peppers):
    """consent.service.check's `suppressed` argument: a person who left everything is `opted_out`;
    one who left a single network is `withdrawn` there. One query per pepper for the whole batch."""

    def suppressed(session: Session, asked: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        keys = list(asked)
        texts = [canonical(kind, value, network).encode() for kind, network, value in keys]
        found: dict[tuple[str, str, str], str] = {}
        for key_id, digests_of in peppers.digesters():
            digests = digests_of(texts)
            listed = check_statements.suppressions(session, key_id, digests)
            if not listed:
                continue  # as for nearly every batch: none of them is on the list
            for key, digest in zip(keys, digests, strict=True):
                if digest in listed and key not in found:
                    scope, show_opted_out = listed[digest]
                    # A person who chose not to have "opted out" shown is answered as a plain withdrawal.
                    found[key] = "opted_out" if scope == "all" and show_opted_out else "withdrawn"
        return found

    return suppressed
