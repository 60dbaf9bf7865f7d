"""The transparency log in the database: serialized appends, stored subtree hashes, signed checkpoints."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import and_, func, insert, or_, select, text
from sqlalchemy.orm import Session

from app.db import write_lock, writing
from app.security import Vault
from erasure.models import Checkpoint, LogNode, Receipt
from erasure.receipts import keys
from erasure.verifier import merkle, note

LOCK_ID = 0x6F776E73  # "owns": the advisory lock that serializes appends on PostgreSQL


class LogError(ValueError):
    """A proof was asked for sizes or indexes the log does not have."""


def lock(session: Session) -> None:
    """Serialize appends across every process and machine. Call before the transaction's first read."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    else:
        write_lock(session)


def size(session: Session) -> int:
    last = session.scalar(select(func.max(LogNode.index)).where(LogNode.level == 0))
    return 0 if last is None else last + 1


def _nodes(session: Session, wanted: Iterable[tuple[int, int]]):
    """One query for every node a computation will read; returns the `get` it calls."""
    by_level: dict[int, list[int]] = {}
    for level, index in set(wanted):
        by_level.setdefault(level, []).append(index)
    found: dict[tuple[int, int], bytes] = {}
    if by_level:
        # (level = l AND index IN (...)) per level: each arm is a primary-key lookup. A row-value
        # IN list of pairs is not, on SQLite: it scans the table.
        rows = session.execute(select(LogNode.level, LogNode.index, LogNode.hash).where(or_(
            *(and_(LogNode.level == level, LogNode.index.in_(indexes)) for level, indexes in by_level.items()))))
        found.update({(lv, ix): h for lv, ix, h in rows})

    def get(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise LogError(f"the log has no node ({level}, {index})") from None

    return get


def append(session: Session, vault: Vault, origin: str, entry: bytes, now: dt.datetime) -> tuple[int, Checkpoint]:
    """Add a leaf and sign a checkpoint of the new tree. The caller holds lock() and commits."""
    return append_many(session, vault, origin, [entry], now)


def append_many(session: Session, vault: Vault, origin: str, entries: Sequence[bytes],
                now: dt.datetime) -> tuple[int, Checkpoint]:
    """Add leaves in order and sign one checkpoint of the tree they make; returns the first one's index.

    The caller is the one appender (holds lock(), or the sequencer's lease) and commits. One query reads
    the complete subtrees the tree already has that the new leaves will meet (the tree's binary
    decomposition); every node the batch makes is computed from those and stored in one statement.
    """
    first = size(session)
    frontier = merkle.needed_for_root(first) if first else []
    read = _nodes(session, frontier)
    known = {(level, index): read(level, index) for level, index in frontier}
    made: list[tuple[int, int, bytes]] = []
    for offset, entry in enumerate(entries):
        new_nodes = merkle.nodes_to_store(first + offset, merkle.leaf_hash(entry), lambda lv, ix: known[(lv, ix)])
        known.update(((lv, ix), h) for lv, ix, h in new_nodes)
        made.extend(new_nodes)
    if made:
        session.execute(insert(LogNode), [{"level": lv, "index": ix, "hash": h} for lv, ix, h in made])
    tree_size = first + len(entries)
    root = merkle.root(tree_size, _known(known))
    return first, _sign(session, vault, origin, tree_size, root, now)


def _known(nodes: dict[tuple[int, int], bytes]):
    def get(level: int, index: int) -> bytes:
        try:
            return nodes[(level, index)]
        except KeyError:
            raise LogError(f"the log has no node ({level}, {index})") from None
    return get


def _sign(session: Session, vault: Vault, origin: str, tree_size: int, root: bytes, now: dt.datetime) -> Checkpoint:
    _row, private = keys.current(session, vault, "log", now)
    body = note.checkpoint_body(origin, tree_size, root)
    checkpoint = Checkpoint(tree_size=tree_size, root=root, note=note.sign_note(body, origin, private), signed_at=now)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def latest_checkpoint(session: Session) -> Checkpoint | None:
    return session.scalar(select(Checkpoint).order_by(Checkpoint.tree_size.desc()).limit(1))


def checkpoint_at(session: Session, tree_size: int) -> Checkpoint | None:
    return session.get(Checkpoint, tree_size)


def inclusion(session: Session, leaf_index: int, tree_size: int) -> list[bytes]:
    if not 0 <= leaf_index < tree_size <= size(session):
        raise LogError("leaf_index must be below tree_size, and tree_size at most the log's size")
    return merkle.inclusion_proof(leaf_index, tree_size,
                                  _nodes(session, merkle.needed_for_inclusion(leaf_index, tree_size)))


def consistency(session: Session, first: int, second: int) -> list[bytes]:
    if not 0 < first <= second <= size(session):
        raise LogError("need 0 < first <= second <= the log's size")
    return merkle.consistency_proof(first, second, _nodes(session, merkle.needed_for_consistency(first, second)))


def leaf(session: Session, leaf_index: int) -> str | None:
    return session.scalar(select(Receipt.jws).where(Receipt.leaf_index == leaf_index))


def verifier_key(session: Session, vault: Vault, origin: str, now: dt.datetime) -> str:
    row, _private = keys.current(session, vault, "log", now)
    return note.verifier_key(origin, row.public_key)


def published_verifier_key(session: Session, vault: Vault, origin: str, now: dt.datetime) -> str:
    """The log's verifier key for those who read it. Made on first need, in a write transaction of its own
    (the caller's reads end first: on SQLite a read transaction cannot safely become a writer); read after."""
    if not keys.in_use(session, "log"):
        with writing(session):
            verifier_key(session, vault, origin, now)
    return verifier_key(session, vault, origin, now)
