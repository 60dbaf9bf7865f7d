"""The export document: everything held about a person as one JSON document, written piece by piece.

The document ends with a "complete" member, written last: true only when every store was read to
the end. A download that was cut off has no "complete" at all, and one where a store failed says
false and names what is missing; neither can be mistaken for the whole story.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import User
from app.text import iso_utc, iso_utc_or_none
from consent.models import ConsentEvent, Grant
from consent.purposes import Purpose
from consent.service import consent_overview
from consent.suppression import Identity, Peppers, lookup
from erasure.models import OptOutRequest
from erasure.optout import service
from erasure.stores.datamap import DataMap, Identities
from erasure.stores.kinds import Entry, StoreError, StoreKind

log = logging.getLogger(__name__)

BATCH = 1000  # rows per query and per piece written
FORMAT = "ownstory-export"
VERSION = 1
ABOUT = ("Everything this service and the platform's stores hold about you. 'complete' is the last member: "
         "true only if every store was read to the end. If it is missing or false, this file is not the whole "
         "of it; 'incomplete' names what could not be read. Download it again later.")


# --- Ownstory's own records --------------------------------------------------------------------

def member_records(session: Session, user: User, grants: list[Grant], purposes: Mapping[str, Purpose],
                   peppers: Peppers, identities: Identities, base_url: str) -> dict:
    """A signed-in person's records: account, grants (never their tokens), consents, ledger, opt-outs."""
    history = session.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == user.id)
                              .order_by(ConsentEvent.seq))
    requests = session.scalars(select(OptOutRequest).where(OptOutRequest.user_id == user.id)
                               .order_by(OptOutRequest.requested_at))
    return {
        "account": {"id": user.id, "email": user.email, "created_at": iso_utc_or_none(user.created_at),
                    "last_login_at": iso_utc_or_none(user.last_login_at)},
        "grants": [{"network": g.network, "account_id": g.account_id, "handle": g.handle,
                    "scopes": g.scope_list, "granted_at": iso_utc_or_none(g.granted_at)} for g in grants],
        "consents": [{"network": c.network, "purpose": c.purpose, "title": c.title, "status": c.status,
                      "version": c.version, "current_version": c.current_version, "since": iso_utc_or_none(c.since)}
                     for c in consent_overview(session, user.id, purposes)],
        "consent_history": [{"seq": e.seq, "network": e.network, "purpose": e.purpose, "version": e.version,
                             "action": e.action, "method": e.method, "at": iso_utc(e.at, micro=True), "hash": e.hash}
                            for e in history],
        "optouts": [_optout(r, base_url) for r in requests],
        "suppressions": _suppressions(session, peppers, identities),
    }


def proof_records(session: Session, peppers: Peppers, identities: Identities) -> dict:
    """Records for someone without an account: only what is keyed by the identities they proved.

    Nothing tied to an Ownstory account is included, so the export never tells whether a proven
    network account or address also belongs to a member.
    """
    return {"account": None, "grants": [], "consents": [], "consent_history": [], "optouts": [],
            "suppressions": _suppressions(session, peppers, identities)}


def _optout(r: OptOutRequest, base_url: str) -> dict:
    return {"id": r.id, "scope": r.scope, "status": r.status, "source": r.source,
            "requested_at": iso_utc_or_none(r.requested_at), "deadline": iso_utc_or_none(r.deadline),
            "completed_at": iso_utc_or_none(r.completed_at),
            "receipt_id": r.receipt_id,
            "receipt_url": f"{base_url}/receipts/{r.receipt_id}" if r.receipt_id else None}


def _suppressions(session: Session, peppers: Peppers, identities: Identities) -> list[dict]:
    """Which of the person's identities are on the suppression list (kept as HMACs; named here for them)."""
    listed = identity_list(identities)
    return [{"identity": i.canonical(), "scope": row.scope, "since": iso_utc_or_none(row.created_at),
             "platform_may_say_opted_out": row.show_opted_out}
            for i, row in zip(listed, lookup(session, peppers, listed), strict=True) if row is not None]


def identity_list(identities: Identities) -> list[Identity]:
    found = service.identity_list(identities)
    return found + ([Identity("subject", identities.subject)] if identities.subject else [])


# --- the document, piece by piece --------------------------------------------------------------

def stream_export(datamap: DataMap, identities: Identities, records: dict, now: dt.datetime,
                  batch_size: int = BATCH) -> Iterator[str]:
    """Yield the JSON document in pieces of at most `batch_size` rows: memory does not grow with the data."""
    head = {"format": FORMAT, "version": VERSION, "generated_at": iso_utc(now, micro=True), "about": ABOUT,
            "identities": sorted(i.canonical() for i in identity_list(identities)), "ownstory": records}
    yield _dumps(head)[:-1] + ', "stores": {'
    incomplete: list[str] = []
    for s, store in enumerate(datamap.stores):
        yield f'{", " if s else ""}{_dumps(store.name)}: {{'
        for c, (category, entries) in enumerate(_by_category(store).items()):
            yield f'{", " if c else ""}{_dumps(category)}: ['
            for e, entry in enumerate(entries):
                if e:
                    yield ", "
                failed = yield from _entry(store, entry, identities.values_for(entry), batch_size)
                if failed:
                    incomplete.append(f"{store.name}/{category} ({entry.key})")
            yield "]"
        yield "}"
    yield "}, "
    if incomplete:
        yield f'"incomplete": {_dumps(incomplete)}, "complete": false}}'
    else:
        yield '"complete": true}'


def _by_category(store: StoreKind) -> dict[str, list[Entry]]:
    grouped: dict[str, list[Entry]] = {}
    for entry in store.entries:
        grouped.setdefault(entry.category, []).append(entry)
    return grouped


def _entry(store: StoreKind, entry: Entry, values: list[str], batch_size: int):
    """One data-map entry as an object with its rows (what the store holds, whatever its kind: rows of
    a table, keys, objects). Returns True if the store failed part-way."""
    about = {**store.describe(entry), "identity": entry.identity, "network": entry.network}
    yield _dumps(about)[:-1] + ', "rows": ['
    count, error = 0, None
    try:
        if values:
            for batch in store.export(entry, values, batch_size):
                yield (", " if count else "") + _dumps(batch)[1:-1]  # a batch is encoded in one call
                count += len(batch)
    except StoreError as exc:
        # Logged by class only: a driver's text may carry the person's identities.
        log.warning("export: store %s failed on %s (%s)", entry.store, entry.key, type(exc).__name__)
        error = "This store could not be read to the end just now; the rows above are only part of it."
    tail: dict[str, Any] = {"row_count": count}
    if error:
        tail.update(complete=False, error=error)
    yield "], " + _dumps(tail)[1:]
    return error is not None


def _dumps(value) -> str:
    try:
        return _ENCODER.encode(value)
    except ValueError:  # NaN or Infinity, which JSON cannot hold: written as strings instead
        return _ENCODER.encode(_finite(value))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _plain(value):
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return str(value)  # Decimal, UUID, and whatever else a driver hands back


_ENCODER = json.JSONEncoder(default=_plain, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))
