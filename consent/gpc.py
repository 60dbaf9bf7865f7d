"""Global Privacy Control: a browser's `Sec-GPC: 1` withdraws a signed-in person's consent to sale or sharing.

How the signal is read, decided here because the specification leaves it to the service:

- The purposes marked `gpc = true` in the catalogue are withdrawn, on every network, at
  whatever version was given, each as one ledger event with method "gpc".
- It happens once per signal: on the first page (GET) a signed-in person opens with the signal
  on, where they are told what was withdrawn. The moment is kept (`gpc_signals`), so later
  requests carrying the signal change nothing and add no events.
- A consent the person gives after that, while their browser still sends the signal, is their
  explicit choice made knowing of the signal; it stands, and the signal does not withdraw it
  again. (The California regulations let a person confirm a choice that conflicts with the
  signal; giving consent again on the consents page, after being told, is that confirmation.)
- When the browser that sent the signal comes back without it, the signal has stopped, and
  the record goes. If it is turned on again, that is a new signal: it withdraws what is
  granted then, and the person is told again.
- Pages are honoured on GET only, so that a form sent back as the signal arrives is not mixed
  with a withdrawal made in the same request; the next page honours it.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, cast

from flask import Blueprint, Flask, current_app, flash, jsonify, request, session
from flask_login import current_user
from sqlalchemy import CursorResult, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.datastructures import Headers

from app.db import utcnow, write_lock
from app.extensions import db
from consent import ledger
from consent.models import ConsentState, GpcSignal
from consent.purposes import Purpose

log = logging.getLogger(__name__)
bp = Blueprint("gpc", __name__)

HEADER = "Sec-GPC"
LAST_UPDATE = "2026-11-25"  # when what this service does on the signal last changed (gpc.json)
SESSION_KEY = "gpc_seen"  # the signed-in person's id, while this browser's signal is on record


def signal_on(headers: Mapping[str, str] | Headers) -> bool:
    """The specification's one value: "1". Anything else, or no header, is no signal."""
    return headers.get(HEADER, "").strip() == "1"


def honour(db: Session, subject_id: str, purposes: Mapping[str, Purpose], now: dt.datetime) -> list[ConsentState]:
    """Record the signal and withdraw the gpc purposes' granted consents, once. Returns what was withdrawn.

    If the signal is already on record, nothing changes: consents given since are the person's
    explicit choice. The caller commits.
    """
    write_lock(db)
    try:
        # The key serializes racing requests of one person (PostgreSQL waits on the other insert).
        with db.begin_nested():
            db.add(GpcSignal(subject_id=subject_id, since=now))
            db.flush()
    except IntegrityError:
        return []  # already on record
    keys = [key for key, purpose in purposes.items() if purpose.gpc]
    if not keys:
        return []
    granted = list(db.scalars(
        select(ConsentState).where(ConsentState.subject_id == subject_id, ConsentState.purpose.in_(keys),
                                   ConsentState.status == "granted")
        .order_by(ConsentState.network, ConsentState.purpose)))
    withdrawn = [(s.network, s.purpose, s.version) for s in granted]
    for network, purpose, version in withdrawn:
        ledger.append(db, subject_id, network, purpose, version, "withdraw", "gpc", now)
    return granted


def stopped(db: Session, subject_id: str) -> bool:
    """The browser came back without the signal: forget it, so a new one is honoured anew. The caller commits."""
    write_lock(db)
    gone = cast(CursorResult[Any], db.execute(delete(GpcSignal).where(GpcSignal.subject_id == subject_id)))
    return bool(gone.rowcount)


def notice(withdrawn: list[ConsentState], purposes: Mapping[str, Purpose], networks: Mapping) -> str:
    what = "; ".join(
        f"{purposes[s.purpose].title if s.purpose in purposes else s.purpose} "
        f"({networks[s.network].name if s.network in networks else s.network})" for s in withdrawn)
    return (f"Your browser asked us not to sell or share your data (Global Privacy Control), so we withdrew "
            f"your consent to: {what}. If you want to give it again, you can on the Consents page; "
            f"we will not undo that choice while your browser keeps sending the signal.")


def _on_request() -> None:
    """Before every page: honour a new signal from a signed-in person, or notice that it stopped."""
    if request.endpoint == "static" or request.path.startswith("/api/"):
        return
    on = signal_on(request.headers)
    recorded = session.get(SESSION_KEY)
    if not on and recorded is None:
        return  # the common case: no signal, and none on record from this browser; no query at all

    if not on and recorded is not None:
        with db.writing():  # ends the request's read transaction: the write lock comes before any read
            if stopped(db.session, recorded):
                log.info("gpc: user %s, the signal stopped", recorded)
        session.pop(SESSION_KEY, None)
        return
    if not current_user.is_authenticated or getattr(current_user, "role", None) != "person":
        return
    if recorded == current_user.id or request.method != "GET":
        return  # already honoured from this browser; or honoured on the next page, where the person is told
    subject_id = current_user.id
    purposes = current_app.extensions["purposes"]
    with db.writing():
        withdrawn = honour(db.session, subject_id, purposes, utcnow())
    session[SESSION_KEY] = subject_id
    if withdrawn:
        log.info("gpc: user %s, %d consent(s) withdrawn", subject_id, len(withdrawn))
        flash(notice(withdrawn, purposes, current_app.extensions["networks"]), "info")


@bp.get("/.well-known/gpc.json")
def well_known():
    """The GPC support resource: this service honours the signal."""
    response = jsonify({"gpc": True, "lastUpdate": LAST_UPDATE})
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_on_request)
