"""The audit trail: who did what, one global append-only hash chain, its replay, and `flask audit`.

Every sign-in (and failed one), sign-up and sign-out, every 401 and 403, every operator and auditor
action and every account, token and key command lands here. Events name actors and targets by id
only: never an email, a token, a password or anything else a person could be recognised by.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

import click
from flask import Flask, Response, current_app, request, session
from flask.cli import AppGroup
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import chain
from app.db import end_request_transaction, utcnow, write_lock
from app.extensions import db
from app.models import ACTOR_KINDS, AuditEvent
from app.text import iso_utc

log = logging.getLogger(__name__)

GENESIS = chain.GENESIS
LOCK_ID = 0x61756474  # "audt": serializes appends on PostgreSQL; erasure/log.py's is 0x6F776E73
BATCH = 1000
MAX_DETAILS = 4000  # characters of canonical JSON: details are a few ids and codes, never a payload

# Endpoints whose use by an operator or auditor is recorded after the fact, with the answer's status
# as the outcome. Reads belong here; a change of state is recorded in its own transaction with record().
AUDITED_ENDPOINTS = {
    "log_api.verify_receipt": "receipt_verify",
}


# --- the chain ---------------------------------------------------------------------------------

def event_hash(event) -> str:
    """The hash an event (a model instance or a row with the same fields) should carry."""
    return chain.link_hash({
        "seq": event.seq, "at": iso_utc(event.at, micro=True), "actor_kind": event.actor_kind,
        "actor_id": event.actor_id, "action": event.action, "target": event.target, "outcome": event.outcome,
        "details": event.details or {}, "prev_hash": event.prev_hash})


def _plain_json(details: dict | None) -> dict:
    """The details as they will read back from the database, so the stored row hashes as it was hashed."""
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise TypeError("audit details must be a dict")
    text_ = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if len(text_) > MAX_DETAILS:
        raise ValueError("audit details are too long: record ids and codes, not payloads")
    return json.loads(text_)


def lock(session_: Session) -> None:
    """Serialize appends across every process and machine. On SQLite, call before the transaction's first read."""
    if session_.get_bind().dialect.name == "postgresql":
        session_.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    else:
        write_lock(session_)


def record(session_: Session, *, actor_kind: str, actor_id: str | None, action: str, target: str | None = None,
           outcome: str = "ok", details: dict | None = None, now: dt.datetime) -> AuditEvent:
    """Append an event to the trail in the caller's transaction; the caller commits.

    Appends are serialized (an advisory lock on PostgreSQL, the write lock on SQLite), held until the
    caller's transaction ends: record last, just before the commit. On SQLite, a transaction that has
    only read so far cannot always become a writer: take write_lock(session) before its first read.
    """
    if actor_kind not in ACTOR_KINDS:
        raise ValueError(f"unknown actor kind {actor_kind!r}")
    if now.tzinfo is None:
        raise ValueError("an audit event's time must be timezone-aware")
    if not action or len(action) > 64:
        raise ValueError("an audit action is a short code such as 'login'")
    plain = _plain_json(details)
    lock(session_)

    def build(seq: int, prev_hash: str) -> AuditEvent:
        event = AuditEvent(seq=seq, at=now, actor_kind=actor_kind, actor_id=_short(actor_id, 64), action=action,
                           target=_short(target, 255), outcome=_short(outcome, 32) or "ok", details=plain,
                           prev_hash=prev_hash)
        event.hash = event_hash(event)
        return event

    # A writer that skipped the lock may take our seq: append then reads the head again.
    return chain.append(session_, lambda: _next_link(session_), build)


def record_now(*, actor_kind: str, actor_id: str | None, action: str, target: str | None = None,
               outcome: str = "ok", details: dict | None = None, now: dt.datetime | None = None,
               sessionmaker=None) -> AuditEvent:
    """Append an event in a transaction of its own and commit it, whatever becomes of the caller's.

    For views: a failed sign-in or a refused request is recorded though the request's own work is
    rolled back. The session factory defaults to the current app's.
    """
    maker = sessionmaker or current_app.extensions["ownstory_db"]["sessionmaker"]
    with maker() as own:
        event = record(own, actor_kind=actor_kind, actor_id=actor_id, action=action, target=target,
                       outcome=outcome, details=details, now=now or utcnow())
        own.commit()
        return event


class Actor(TypedDict):
    """Who acted, as record() takes it: `record(session, **actor_of(user), ...)`."""

    actor_kind: str
    actor_id: str | None


def actor_of(principal: Any) -> Actor:
    """`actor_kind` and `actor_id` for a signed-in user, an API token's principal, or nobody.

    Use as record(session, **actor_of(current_user), action=..., now=...).
    """
    if principal is None or not getattr(principal, "is_authenticated", False):
        return {"actor_kind": "anonymous", "actor_id": None}
    role = getattr(principal, "role", None)
    kind = role if role in ACTOR_KINDS else "anonymous"
    ident = getattr(principal, "token_id", None) or getattr(principal, "id", None)
    return {"actor_kind": kind, "actor_id": str(ident) if ident is not None else None}


def _short(value: str | None, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def _next_link(session_: Session) -> tuple[int, str]:
    return chain.next_link(session_, AuditEvent)


# --- replay ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Break:
    """The first place the trail stops agreeing with itself."""

    seq: int | None
    problem: str

    def __str__(self) -> str:
        return self.problem


def verify(session_: Session) -> list[Break]:
    """Replay the whole chain in seq order, in batches; the first break, if any (an empty list: intact).

    A deleted entry shows as a gap, an edited one as a hash mismatch, a forged or reordered one as
    a broken link. Only the tip is unanchored: removing the newest entries leaves a shorter valid chain.
    """
    try:
        for _event in chain.replay(_stream(session_), event_hash, "trail"):
            pass
    except chain.Broken as broken:
        return [Break(broken.seq, broken.problem)]
    return []


def _stream(session_: Session) -> Iterator:
    """Every event's row in seq order, a batch at a time: keyset pages, so no cursor stays open between them."""
    columns = (AuditEvent.seq, AuditEvent.at, AuditEvent.actor_kind, AuditEvent.actor_id, AuditEvent.action,
               AuditEvent.target, AuditEvent.outcome, AuditEvent.details, AuditEvent.prev_hash, AuditEvent.hash)
    after = 0
    while True:
        batch = session_.execute(select(*columns).where(AuditEvent.seq > after)
                                 .order_by(AuditEvent.seq).limit(BATCH)).all()
        yield from batch
        if len(batch) < BATCH:
            return
        after = batch[-1].seq


def count(session_: Session) -> int:
    return session_.scalar(select(func.count()).select_from(AuditEvent)) or 0


# --- requests ----------------------------------------------------------------------------------

def init_app(app: Flask) -> None:
    """Record every 401 and 403, and operators' and auditors' use of AUDITED_ENDPOINTS."""
    app.after_request(_record_request)


def _record_request(response: Response) -> Response:
    status = response.status_code
    audited = AUDITED_ENDPOINTS.get(request.endpoint or "")
    if status not in (401, 403) and audited is None:
        return response
    try:
        from flask_login import current_user

        who = actor_of(current_user._get_current_object())
        # Whatever the request left uncommitted is never committed now: ending it releases any lock it
        # holds (SQLite's write lock, this trail's advisory lock), which the append's own transaction would wait for.
        end_request_transaction()
        if status in (401, 403):
            _refusal(who, status)
        elif audited is not None and who["actor_kind"] in ("operator", "auditor"):
            record_now(**who, action=audited, target=_route(), outcome="ok" if status < 400 else str(status),
                       details={"method": request.method, "status": status})
    except SQLAlchemyError:
        # The answer stands; the failure to record it is itself loud.
        log.exception("could not record %s on %s in the audit trail", status, _route())
    return response


def _refusal(who: Actor, status: int) -> None:
    if request.headers.get("Authorization"):
        credential = "bearer"
    elif session.get("_user_id"):
        credential = "session"
    else:
        credential = "none"
    record_now(**who, action="auth_failed" if status == 401 else "forbidden", target=_route(),
               outcome="refused", details={"method": request.method, "status": status, "credential": credential})


def _route() -> str | None:
    """The URL rule (`/api/v1/optouts/<request_id>`), not the path: a path segment can carry anything."""
    return request.url_rule.rule if request.url_rule is not None else None


# --- `flask audit` -----------------------------------------------------------------------------

audit_cli = AppGroup("audit", help="The audit trail.")


@audit_cli.command("verify")
def verify_command() -> None:
    """Replay the hash chain; name the first break (exit 1), if any."""

    breaks = verify(db.session)
    if breaks:
        click.echo(str(breaks[0]))
        click.echo("audit trail broken", err=True)
        raise SystemExit(1)
    click.echo(f"audit trail intact: {count(db.session)} events")


@audit_cli.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000),
              help="How many of the newest events.")
def list_command(limit: int) -> None:
    """The newest events, newest first: seq, time, actor, action, target and outcome."""

    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit))
    for e in events:
        actor = f"{e.actor_kind}:{e.actor_id}" if e.actor_id else e.actor_kind
        details = json.dumps(e.details, sort_keys=True, separators=(",", ":")) if e.details else ""
        click.echo(f"{e.seq:>8}  {iso_utc(e.at, micro=True)}  {actor:<46}  {e.action:<16}  {e.outcome:<8}  "
                   f"{e.target or '-'}  {details}".rstrip())
