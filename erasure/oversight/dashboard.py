"""The operator dashboard: the queue by urgency, one request's steps with a retry, network health.

Operators see status, steps, attempts, errors, and identities as kinds and counts: never the
identities themselves, nor who the person is. Reading changes nothing; the one change an operator
can make, "Retry now", is a POST with a CSRF token, recorded in the audit trail with the retry.
"""
from __future__ import annotations

import datetime as dt
import uuid

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import audit
from app.db import utcnow
from app.extensions import db
from app.logging import redact
from app.staff import staff_only
from erasure.agents import registry as agent_registry
from erasure.agents.models import AuthorizedAgent
from erasure.engine import queue as step_queue  # the view `queue` is the dashboard's
from erasure.engine import slots as shared_slots
from erasure.models import FAILING_STEPS, OPEN_REQUESTS, OptOutRequest, RequestStatus, StepKind, StepStatus
from erasure.optout.operations import retry_now
from erasure.oversight import calls, charts, queries

bp = Blueprint("dashboard", __name__, url_prefix="/operator")
staff_only(bp, "operator")

PAGE_SIZE = 50
STATUS_WORDS = {RequestStatus.RECEIVED: "Received", RequestStatus.IN_PROGRESS: "In progress",
                RequestStatus.NEEDS_ATTENTION: "Needs attention", RequestStatus.COMPLETED: "Completed"}
STEP_STATUS_WORDS = {StepStatus.PENDING: "Pending", StepStatus.RUNNING: "Running", StepStatus.DONE: "Done",
                     StepStatus.RETRYING: "Retrying", StepStatus.NEEDS_ATTENTION: "Needs attention"}
KIND_WORDS = {"email": ("email", "emails"), "account": ("account", "accounts"), "handle": ("handle", "handles"),
              "subject": ("Ownstory account", "Ownstory accounts")}


# --- words -----------------------------------------------------------------------------------------

def span(delta: dt.timedelta) -> str:
    """A length of time in its two largest units: '3 days 4 hours', '2 hours 5 minutes', '7 minutes'."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60

    def unit(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    if days:
        return unit(days, "day") + (f" {unit(hours, 'hour')}" if hours else "")
    if hours:
        return unit(hours, "hour") + (f" {unit(minutes, 'minute')}" if minutes else "")
    if minutes:
        return unit(minutes, "minute")
    return "less than a minute"


def time_left(row: queries.QueueRow, now: dt.datetime) -> str:
    """What an operator needs to know about a request's deadline, in words."""
    if row.completed_at is not None:
        took = f"Completed in {span(row.completed_at - row.requested_at)}"
        if row.completed_at > row.deadline:
            return f"{took}, {span(row.completed_at - row.deadline)} after the deadline"
        return f"{took}, within the deadline"
    if row.deadline < now:
        return f"Overdue by {span(now - row.deadline)}"
    return f"{span(row.deadline - now)} left"


def identity_words(kinds: dict | None) -> str:
    """{"email": 1, "account": 2} as '1 email, 2 accounts': kinds and counts, never values."""
    kinds = kinds or {}
    order = list(KIND_WORDS)
    parts = []
    for kind in sorted(kinds, key=lambda k: (order.index(k) if k in order else len(order), k)):
        count = kinds[kind]
        one, many = KIND_WORDS.get(kind, (kind, kind))
        if isinstance(count, int) and count > 0:
            parts.append(f"{count} {one if count == 1 else many}")
    return ", ".join(parts) or "none"


def scope_words(scope: str) -> str:
    if scope == "all":
        return "Everything"
    networks = current_app.extensions["networks"]
    return networks[scope].name if scope in networks else scope


def target_words(step) -> str:
    networks = current_app.extensions["networks"]
    if step.kind == StepKind.REVOKE and step.target in networks:
        return f"{networks[step.target].name} ({step.target})"
    return step.target


def step_outcome(step) -> str:
    """The counts and outcome a step recorded: chosen keys only, as `result` may hold more one day."""
    r: dict = step.result or {}
    if step.status != StepStatus.DONE:
        return ""
    if step.kind == StepKind.REVOKE:
        return {"revoked": "Revoked", "already_invalid": "Already invalid at the network",
                "manual": "No revocation endpoint: tokens destroyed"}.get(r.get("outcome", ""), "Done")
    if step.kind == StepKind.PURGE and "rows" in r:
        return f"{r['rows']} row{'s' if r['rows'] != 1 else ''} deleted"
    if step.kind == StepKind.VERIFY:
        # Rows that came in while access was being revoked, deleted by verify itself: the operator sees them too.
        late = sum(int(c.get("rows", 0)) for c in r.get("late_rows", []))
        left = f"{r.get('residual_rows', 0)} rows left"
        return f"{left}; {late} late row{'s' if late != 1 else ''} deleted" if late else left
    if step.kind == StepKind.NOTIFY:
        return "Mailed" if r.get("sent") else "No address to mail"
    return "Done"


def safe_error(text: str | None) -> str:
    """Errors are written without personal data; this masks anything that slipped through anyway."""
    return redact(text) if text else ""


@bp.context_processor
def _words():
    return {"time_left": time_left, "identity_words": identity_words, "scope_words": scope_words,
            "target_words": target_words, "step_outcome": step_outcome, "safe_error": safe_error,
            "STATUS_WORDS": STATUS_WORDS, "STEP_STATUS_WORDS": STEP_STATUS_WORDS, "OPEN_REQUESTS": OPEN_REQUESTS,
            "FAILING_STEPS": FAILING_STEPS}


# --- the queue -------------------------------------------------------------------------------------

def _filters() -> queries.QueueFilter:
    """The filters from the query string; a value we do not know is a 400, never a wider list."""
    args = request.args
    status = args.get("status", "")
    overdue = args.get("overdue", "")
    network = args.get("network", "")
    agent = args.get("agent", "")
    if status and status not in list(RequestStatus):
        abort(400, "That status filter is not one of received, in_progress, needs_attention or completed.")
    if overdue not in ("", "yes", "no"):
        abort(400, "The overdue filter is yes, no, or empty.")
    if network and network not in current_app.extensions["networks"]:
        abort(400, "That network is not in the catalogue.")
    if agent and db.session.get(AuthorizedAgent, agent) is None:
        abort(400, "That agent is not registered.")
    return queries.QueueFilter(status=status or None, overdue={"yes": True, "no": False}.get(overdue),
                                 network=network or None, agent=agent or None)


@bp.get("")
def queue():
    filters = _filters()
    cursor = None
    if request.args.get("cursor"):
        try:
            cursor = queries.Cursor.decode(request.args["cursor"])
        except queries.BadCursor as exc:
            abort(400, str(exc))
    now = utcnow()
    page = queries.queue_page(db.session, filters, now, cursor, PAGE_SIZE)
    counts = queries.queue_counts(db.session, now)
    failing = [f for f in queries.failing_steps(db.session) if f.kind == StepKind.REVOKE]
    args = {k: v for k, v in request.args.items() if k in ("status", "overdue", "network", "agent") and v}
    # Bands are as of the walk's start (page.at), so no request is skipped or shown twice across pages;
    # the time left is as of now.
    return render_template("operator/queue.html", page=page, now=now, counts=counts, failing=failing,
                           filters=filters, args=args, networks=current_app.extensions["networks"],
                           agents=agent_registry.listed(db.session),
                           statuses=list(RequestStatus), first_page=cursor is None,
                           next_url=url_for(".queue", **args, cursor=page.next.encode()) if page.next else None)


# --- one request -----------------------------------------------------------------------------------

def _request_id(request_id: str) -> str:
    """Ids are UUIDs in their one canonical form; anything else names no request."""
    try:
        if str(uuid.UUID(request_id)) == request_id:
            return request_id
    except ValueError:
        pass
    abort(404, "There is no opt-out request with that id.")


def _found(request_id: str):
    found = queries.request_with_steps(db.session, _request_id(request_id))
    if found is None:
        abort(404, "There is no opt-out request with that id.")
    return found


@bp.get("/requests/<request_id>")
def request_detail(request_id: str):
    row, steps = _found(request_id)
    retryable = sum(s.status in FAILING_STEPS for s in steps)
    return render_template("operator/request.html", row=row, steps=steps, now=utcnow(), retryable=retryable)


@bp.post("/requests/<request_id>/retry")
def retry(request_id: str):
    """Make the request's failing steps due now: the retry and its audit entry commit together."""
    request_id = _request_id(request_id)
    with db.writing():  # ends the read of the sign-in: on SQLite the write lock comes before any read
        found = db.session.get(OptOutRequest, request_id)
        if found is None:
            abort(404, "There is no opt-out request with that id.")
        count = retry_now(db.session, found, utcnow())
        audit.record(db.session, **audit.actor_of(current_user), action="optout_retry", target=request_id,
                     details={"steps": count, "via": "dashboard"}, now=utcnow())
    if count:
        flash(f"{count} step{'s' if count != 1 else ''} will be tried again now.", "success")
    else:
        flash("No step was waiting to retry, so nothing changed.", "success")
    return redirect(url_for(".request_detail", request_id=request_id), 303)


# --- health ----------------------------------------------------------------------------------------

@bp.get("/health")
def health():
    now = utcnow()
    networks = current_app.extensions["networks"]
    failing = queries.failing_steps(db.session)
    by_network = {f.target: f for f in failing if f.kind == StepKind.REVOKE}
    rows = [(key, networks[key].name, by_network.pop(key, None)) for key in networks]
    rows += [(key, calls.NOT_CONFIGURED[StepKind.REVOKE], f) for key, f in sorted(by_network.items())]
    others = [f for f in failing if f.kind != StepKind.REVOKE]
    held = [(networks[target].name if kind == StepKind.REVOKE and target in networks else target, kind, until)
            for (kind, target), until in sorted(step_queue.holds(db.session, now).items(), key=lambda hold: hold[1])]
    days = queries.completion_days(db.session, now)
    deadline = current_app.config["ERASURE_DEADLINE_DAYS"] * 86400
    return render_template("operator/health.html", rows=rows, networks=networks, others=others, held=held,
                           days=days, now=now,
                           calls=calls.still_to_do(db.session, networks, current_app.extensions["datamap"],
                                                   shared_slots.for_engine(db.engine), now),
                           chart=charts.time_to_complete(days, deadline), duration=charts.duration,
                           coverage=current_app.extensions["datamap_coverage"])
