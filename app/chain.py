"""Hash chains, as the audit trail and the consent ledger keep them: append, and replay to find a break.

Each entry has a seq (1, 2, ...), the hash of the entry before (prev_hash; GENESIS for the first) and
its own hash: SHA-256 over prev_hash's 64 ASCII hex digits followed by the entry's canonical JSON.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

GENESIS = "0" * 64
ATTEMPTS = 5  # racing writers; each lost race costs one retry


class Link(Protocol):
    """What replay reads of an entry: a model instance, or a row with the same columns."""

    @property
    def seq(self) -> int: ...

    @property
    def prev_hash(self) -> str: ...

    @property
    def hash(self) -> str: ...


E = TypeVar("E")
T = TypeVar("T")
L = TypeVar("L", bound=Link)


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: compact JSON with sorted keys, in UTF-8."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def link_hash(fields: Mapping[str, Any]) -> str:
    """The hash of an entry whose fields (prev_hash among them) are `fields`."""
    return hashlib.sha256(fields["prev_hash"].encode("ascii") + canonical(fields)).hexdigest()


def next_link(session: Session, model: Any, *where: Any) -> tuple[int, str]:
    """The seq and prev_hash the next entry of the chain (the entries of `model` that `where` selects) takes."""
    last = session.execute(
        select(model.seq, model.hash).where(*where).order_by(model.seq.desc()).limit(1)
    ).first()
    return (last.seq + 1, last.hash) if last else (1, GENESIS)


def append(session: Session, next_link: Callable[[], tuple[int, str]], build: Callable[[int, str], E],
           then: Callable[[E], None] | None = None) -> E:
    """Add the entry `build(seq, prev_hash)` makes (with its hash) to the end of a chain; the caller commits.

    Two writers that read the same end of the chain both try the same seq; the chain's unique seq
    lets only one win, and the loser rolls back its savepoint and reads the end again. `then` runs
    in the same savepoint (the ledger updates the person's state there).
    """
    def write() -> E:
        seq, prev_hash = next_link()
        entry = build(seq, prev_hash)
        session.add(entry)
        session.flush()
        if then is not None:
            then(entry)
            session.flush()
        return entry

    return retrying(session, write)


def retrying(session: Session, write: Callable[[], T]) -> T:
    """`write()` (which reads the end of a chain and adds to it) in a savepoint; when a racing writer took the
    same seq first, the savepoint is rolled back and `write` runs again, on the new end."""
    for attempt in range(ATTEMPTS):
        try:
            with session.begin_nested():
                return write()
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class Broken(Exception):
    """The first place a chain stops agreeing with itself."""

    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def replay(entries: Iterable[L], hash_of: Callable[[L], str], name: str = "chain") -> Iterator[L]:
    """The entries, in seq order, as long as the chain holds; raises Broken at the first that does not.

    A deleted entry shows as a gap, an edited one as a hash mismatch, a forged or reordered one as a
    broken link. Only the tip is unanchored: removing the newest entries leaves a shorter valid chain.
    """
    expected, prev_hash = 1, GENESIS
    for entry in entries:
        if entry.seq != expected:
            problem = (f"gap: the {name} starts at seq {entry.seq}, not 1" if expected == 1
                       else f"gap: seq jumps {expected - 1} -> {entry.seq}; entries are missing")
            raise Broken(entry.seq, problem)
        if entry.prev_hash != prev_hash:
            raise Broken(entry.seq, f"broken link at seq {entry.seq}: prev_hash does not match the hash of "
                                    f"seq {entry.seq - 1} (an entry was removed, reordered or forged)")
        if hash_of(entry) != entry.hash:
            raise Broken(entry.seq, f"hash mismatch at seq {entry.seq}: the entry was edited")
        yield entry
        expected, prev_hash = entry.seq + 1, entry.hash
