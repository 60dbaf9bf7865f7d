"""The consent ledger: an append-only hash chain per person, and its replay to find breaks."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import write_lock
from consent.models import ConsentEvent, ConsentState

GENESIS = "0" * 64
ATTEMPTS = 5  # racing writers for one person; each lost race costs one retry
STATUS_OF = {"grant": "granted", "withdraw": "withdrawn"}
BATCH = 1000


def iso_utc(at: dt.datetime) -> str:
    """Always with microseconds and 'Z', so the same instant always hashes the same way."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(*, subject_id: str, seq: int, network: str, purpose: str, version: int, action: str,
              method: str, at: dt.datetime, prev_hash: str) -> bytes:
    """The bytes an event's hash covers: compact JSON with sorted keys."""
    fields = {"subject_id": subject_id, "seq": seq, "network": network, "purpose": purpose, "version": version,
              "action": action, "method": method, "at": iso_utc(at), "prev_hash": prev_hash}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(prev_hash: str, canonical_bytes: bytes) -> str:
    """SHA-256 over the previous hash (its 64 ASCII hex digits) followed by the canonical fields."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_bytes).hexdigest()


def event_hash(event: ConsentEvent) -> str:
    return chain_hash(event.prev_hash, canonical(
        subject_id=event.subject_id, seq=event.seq, network=event.network, purpose=event.purpose,
        version=event.version, action=event.action, method=event.method, at=event.at, prev_hash=event.prev_hash))


def append(session: Session, subject_id: str, network: str, purpose: str, version: int, action: str,
           method: str, at: dt.datetime) -> ConsentEvent:
    """Add the next event to a person's chain and update their ConsentState, in the caller's transaction.

    Two writers that read the same last entry both try the same seq; the unique (subject_id, seq)
    lets only one win, and the loser rolls back its savepoint and reads the chain again. So that
    many writers queue rather than keep losing, writers are serialized up front: SQLite's write
    lock (call this, or write_lock, before the transaction's first read), or on PostgreSQL a
    transaction-scoped advisory lock per person.
    """
    if action not in STATUS_OF:
        raise ValueError(f"unknown consent action {action!r}")
    if at.tzinfo is None:
        raise ValueError("a consent event's time must be timezone-aware")
    _serialize_writers(session, subject_id)
    for attempt in range(ATTEMPTS):
        try:
            with session.begin_nested():
                seq, prev_hash = _next_link(session, subject_id)
                event = ConsentEvent(subject_id=subject_id, seq=seq, network=network, purpose=purpose,
                                     version=version, action=action, method=method, at=at, prev_hash=prev_hash)
                event.hash = event_hash(event)
                session.add(event)
                session.flush()
                _materialize(session, event)
                session.flush()
            return event
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _serialize_writers(session: Session, subject_id: str) -> None:
    write_lock(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(subject_id, 0))))


def _next_link(session: Session, subject_id: str) -> tuple[int, str]:
    """The seq and prev_hash the next entry of this person's chain takes."""
    last = session.execute(
        select(ConsentEvent.seq, ConsentEvent.hash).where(ConsentEvent.subject_id == subject_id)
        .order_by(ConsentEvent.seq.desc()).limit(1)
    ).first()
    return (last.seq + 1, last.hash) if last else (1, GENESIS)


def _materialize(session: Session, event: ConsentEvent) -> None:
    # Writers to one person's chain are serialized (_serialize_writers), so a plain get-or-add is safe.
    state = session.get(ConsentState, (event.subject_id, event.network, event.purpose))
    if state is None:
        state = ConsentState(subject_id=event.subject_id, network=event.network, purpose=event.purpose)
        session.add(state)
    state.version = event.version
    state.status = STATUS_OF[event.action]
    state.event_id = event.id
    state.updated_at = event.at


@dataclass(frozen=True)
class Break:
    """The first place a person's chain or materialized state stops agreeing with itself."""

    subject_id: str
    seq: int | None
    problem: str

    def __str__(self) -> str:
        return f"subject {self.subject_id}: {self.problem}"


def verify(session: Session, subject_id: str | None = None) -> list[Break]:
    """Replay every chain (or one person's) and check ConsentState against it; first break per person.

    Events are streamed in (subject_id, seq) order in batches, and states are fetched once per
    batch of people, so memory and query count do not grow with one query per person.
    """
    events = select(ConsentEvent).order_by(ConsentEvent.subject_id, ConsentEvent.seq)
    if subject_id is not None:
        events = events.where(ConsentEvent.subject_id == subject_id)
    stream = session.scalars(events.execution_options(yield_per=BATCH))
    breaks: list[Break] = []
    pending: dict[str, dict[tuple[str, str], ConsentEvent]] = {}
    for subject, chain in groupby(stream, key=lambda e: e.subject_id):
        found = _replay(subject, chain)
        if isinstance(found, Break):
            breaks.append(found)
        else:
            pending[subject] = found
        if len(pending) >= BATCH:
            breaks.extend(_check_states(session, pending))
            pending = {}
    breaks.extend(_check_states(session, pending))
    breaks.extend(_orphan_states(session, subject_id))
    return sorted(breaks, key=lambda b: b.subject_id)


def _replay(subject: str, chain: Iterable[ConsentEvent]) -> Break | dict[tuple[str, str], ConsentEvent]:
    """The last event per (network, purpose), or the first break in the chain."""
    last: dict[tuple[str, str], ConsentEvent] = {}
    expected, prev_hash = 1, GENESIS
    for event in chain:
        if event.seq != expected:
            problem = (f"gap: the chain starts at seq {event.seq}, not 1" if expected == 1
                       else f"gap: seq jumps {expected - 1} -> {event.seq}; entries are missing")
            return Break(subject, event.seq, problem)
        if event.prev_hash != prev_hash:
            return Break(subject, event.seq, f"broken link at seq {event.seq}: prev_hash does not match the hash "
                                             f"of seq {event.seq - 1} (an entry was removed, reordered or forged)")
        if event_hash(event) != event.hash:
            return Break(subject, event.seq, f"hash mismatch at seq {event.seq}: the entry was edited")
        last[(event.network, event.purpose)] = event
        expected, prev_hash = event.seq + 1, event.hash
    return last


def _check_states(session: Session, replayed: dict[str, dict[tuple[str, str], ConsentEvent]]) -> Iterator[Break]:
    if not replayed:
        return
    states: dict[str, dict[tuple[str, str], ConsentState]] = {s: {} for s in replayed}
    for state in session.scalars(select(ConsentState).where(ConsentState.subject_id.in_(replayed))):
        states[state.subject_id][(state.network, state.purpose)] = state
    for subject, last in replayed.items():
        problem = _state_problem(last, states[subject])
        if problem:
            yield Break(subject, None, problem)


def _state_problem(last: dict[tuple[str, str], ConsentEvent], states: dict[tuple[str, str], ConsentState]) -> str:
    for pair in sorted(set(last) | set(states)):
        event, state = last.get(pair), states.get(pair)
        what = f"consent state for {pair[0]}/{pair[1]}"
        if event is None:
            return f"{what} exists but the ledger has no entry for it"
        if state is None:
            return f"{what} is missing; the ledger's last entry is seq {event.seq}"
        if (state.status, state.version, state.event_id) != (STATUS_OF[event.action], event.version, event.id):
            return (f"{what} says {state.status} v{state.version} but the ledger's last entry "
                    f"(seq {event.seq}) says {STATUS_OF[event.action]} v{event.version}")
    return ""


def _orphan_states(session: Session, subject_id: str | None) -> Iterator[Break]:
    """People with a consent state but no ledger at all: their whole chain was deleted."""
    has_events = exists().where(ConsentEvent.subject_id == ConsentState.subject_id)
    query = select(ConsentState.subject_id, func.count()).where(~has_events).group_by(ConsentState.subject_id)
    if subject_id is not None:
        query = query.where(ConsentState.subject_id == subject_id)
    for subject, count in session.execute(query):
        yield Break(subject, None, f"{count} consent state row(s) but no ledger entries: the chain was deleted")
