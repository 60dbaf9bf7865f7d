"""The consent ledger: an append-only hash chain per person, and its replay to find breaks."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import exists, func, insert, select
from sqlalchemy.orm import Session

from app import chain, text
from app.db import expire_written_past, table_of, upsert, write_lock
from consent.models import ConsentEvent, ConsentState

GENESIS = chain.GENESIS
STATUS_OF = {"grant": "granted", "withdraw": "withdrawn"}
BATCH = 1000


def iso_utc(at: dt.datetime) -> str:
    """Always with microseconds and 'Z', so the same instant always hashes the same way."""
    return text.iso_utc(at, micro=True)


def event_hash(event: ConsentEvent) -> str:
    return chain.link_hash({
        "subject_id": event.subject_id, "seq": event.seq, "network": event.network, "purpose": event.purpose,
        "version": event.version, "action": event.action, "method": event.method, "at": iso_utc(event.at),
        "prev_hash": event.prev_hash})


def append(session: Session, subject_id: str, network: str, purpose: str, version: int, action: str,
           method: str, at: dt.datetime) -> ConsentEvent:
    """Add the next event to a person's chain and update their ConsentState, in the caller's transaction.

    Two writers that read the same last entry both try the same seq; the unique (subject_id, seq)
    lets only one win, and the loser rolls back its savepoint and reads the chain again. So that
    many writers queue rather than keep losing, writers are serialized up front: SQLite's write
    lock (call this, or write_lock, before the transaction's first read), or on PostgreSQL a
    transaction-scoped advisory lock per person.
    """
    _check(action, at)
    _serialize_writers(session, subject_id)

    def build(seq: int, prev_hash: str) -> ConsentEvent:
        event = ConsentEvent(subject_id=subject_id, seq=seq, network=network, purpose=purpose, version=version,
                             action=action, method=method, at=at, prev_hash=prev_hash)
        event.hash = event_hash(event)
        return event

    return chain.append(session, lambda: _next_link(session, subject_id), build,
                        then=lambda event: _materialize(session, event))


@dataclass(frozen=True)
class Change:
    """One event for append_all: what `append` takes besides the session and the chain's subject."""

    network: str
    purpose: str
    version: int
    action: str
    method: str
    at: dt.datetime


_EVENTS, _STATES = table_of(ConsentEvent), table_of(ConsentState)


def append_all(session: Session, subject_id: str, changes: Sequence[Change]) -> None:
    """`append` for several events of one chain, in order, in the same few statements whatever their number:
    one lock, one read of the chain's end, one INSERT of the events, one upsert of the states they leave.

    The events and states are written past the session's objects: those of this chain the session loaded are
    read again on their next use.
    """
    if not changes:
        return
    for change in changes:
        _check(change.action, change.at)
    _serialize_writers(session, subject_id)
    chain.retrying(session, lambda: _write(session, subject_id, changes, *_next_link(session, subject_id)))


def start_chain(session: Session, subject_id: str, changes: Sequence[Change]) -> None:
    """append_all for a chain no one can have written yet, such as the one forget files a person's withdrawals
    under (named after the request, written only in the transaction that records forget's outcome): no lock, no
    read of its end, no savepoint, just the INSERT of the events and the upsert of their states.

    The chain's unique seq still holds: were the chain there after all, the INSERT fails and nothing is written.
    """
    if not changes:
        return
    for change in changes:
        _check(change.action, change.at)
    write_lock(session)
    _write(session, subject_id, changes, 1, chain.GENESIS)


def _write(session: Session, subject_id: str, changes: Sequence[Change], seq: int, prev_hash: str) -> None:
    """The events, linked from (seq, prev_hash) on, in one INSERT, and the state each (network, purpose) is left in."""
    events = []
    for change in changes:
        event = ConsentEvent(subject_id=subject_id, seq=seq, network=change.network, purpose=change.purpose,
                             version=change.version, action=change.action, method=change.method, at=change.at,
                             prev_hash=prev_hash)  # never added to the session: it gives the row and its hash
        event.hash = prev_hash = event_hash(event)
        events.append({c.key: getattr(event, c.key) for c in _EVENTS.c if c.key != "id"})
        seq += 1
    ids = session.execute(insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True), events).scalars()
    last = {(e["network"], e["purpose"]): {
        "subject_id": subject_id, "network": e["network"], "purpose": e["purpose"], "version": e["version"],
        "status": STATUS_OF[e["action"]], "event_id": event_id, "updated_at": e["at"]}
        for e, event_id in zip(events, ids, strict=True)}
    session.execute(upsert(_STATES, ("subject_id", "network", "purpose"),
                           ("version", "status", "event_id", "updated_at"), session.get_bind().dialect.name),
                    list(last.values()))
    expire_written_past(session, (ConsentEvent, ConsentState), lambda o: o.subject_id == subject_id)


def _check(action: str, at: dt.datetime) -> None:
    if action not in STATUS_OF:
        raise ValueError(f"unknown consent action {action!r}")
    if at.tzinfo is None:
        raise ValueError("a consent event's time must be timezone-aware")


def _serialize_writers(session: Session, subject_id: str) -> None:
    write_lock(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(subject_id, 0))))


def _next_link(session: Session, subject_id: str) -> tuple[int, str]:
    """The seq and prev_hash the next entry of this person's chain takes."""
    return chain.next_link(session, ConsentEvent, ConsentEvent.subject_id == subject_id)


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
    for subject, entries in groupby(stream, key=lambda e: e.subject_id):
        found = _replay(subject, entries)
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


def _replay(subject: str, events: Iterable[ConsentEvent]) -> Break | dict[tuple[str, str], ConsentEvent]:
    """The last event per (network, purpose), or the first break in the chain."""
    last: dict[tuple[str, str], ConsentEvent] = {}
    try:
        for event in chain.replay(events, event_hash):
            last[(event.network, event.purpose)] = event
    except chain.Broken as broken:
        return Break(subject, broken.seq, broken.problem)
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
