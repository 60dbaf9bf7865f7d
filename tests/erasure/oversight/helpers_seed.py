"""Helpers for the operator and auditor pages: requests seeded in every state, by real people, and
a bulk seeder for pagination; a counter of SQL statements; a check that a page names nobody."""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass, field

from sqlalchemy import insert, select, update

from app.db import utcnow
from consent.grants import store_grant
from erasure.context import context_from_app
from erasure.models import ErasureStep, OptOutRequest
from erasure.optout import service
from tests.conftest import db_session

HALF_HOUR = dt.timedelta(minutes=30)  # keeps "20 days left" true for half an hour of test time


@dataclass
class Secrets:
    """Everything that identifies the seeded people: no page for staff may show any of it."""

    emails: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)

    def assert_absent(self, text: str) -> None:
        lowered = text.lower()
        for email in self.emails:
            assert email.lower() not in lowered, email
        for value in (*self.accounts, *self.handles, *self.subjects):
            # Whole tokens only: an account id must not be "found" inside a timestamp or a UUID.
            assert not re.search(rf"(?<![\w.\-]){re.escape(value)}(?![\w\-])", text), value


def person_leaves(app, make_person, secrets: Secrets, *, requested_at: dt.datetime, n: int) -> str:
    """A signed-up person with a Demo Social account leaves everything at `requested_at`: the request id."""
    person = make_person(email=f"leaver{n}-{uuid.uuid4().hex[:6]}@example.org")
    account, handle = f"77{n:03d}{uuid.uuid4().int % 1000:03d}", f"handle{n}x{uuid.uuid4().hex[:4]}"
    ctx = context_from_app(app)
    with db_session(app) as db:
        grant = store_grant(db, ctx.vault, person.id, ctx.networks["demo"], {"access_token": f"at-{account}"},
                            {"sub": account, "preferred_username": handle}, requested_at)
        db.commit()
        from app.models import User

        user = db.get(User, person.id)
        db.commit()  # as the form does: the reads end, and the submission takes the write lock first
        submitted = service.submit(db, ctx, user=user, grants=[grant], scope="all", now=requested_at,
                                   reason_code="other", reason_text=f"mail me at {person.email}")
        db.commit()
        request_id = submitted.request.id
    secrets.emails.append(person.email)
    secrets.accounts.append(account)
    secrets.handles.append(handle)
    secrets.subjects.append(person.id)
    return request_id


def set_state(app, request_id: str, status: str, *, completed_at: dt.datetime | None = None,
              failing: tuple[str, int, str] | None = None) -> None:
    """Put a request in a state, as the worker would have left it.

    failing: (step status, attempts, last error) for its revoke step.
    """
    with db_session(app) as db:
        values: dict = {"status": status}
        if status == "completed":
            values.update(completed_at=completed_at, identities_sealed=None, reason_text=None)
            db.execute(update(ErasureStep).where(ErasureStep.request_id == request_id)
                       .values(status="done", attempts=1, done_at=completed_at, result={}))
        elif status == "in_progress":
            first = db.scalar(select(ErasureStep.id).where(ErasureStep.request_id == request_id)
                              .order_by(ErasureStep.position).limit(1))
            db.execute(update(ErasureStep).where(ErasureStep.id == first)
                       .values(status="done", attempts=1, done_at=utcnow(), result={"outcome": "revoked"}))
        if failing:
            step_status, attempts, error = failing
            db.execute(update(ErasureStep).where(ErasureStep.request_id == request_id, ErasureStep.kind == "revoke")
                       .values(status=step_status, attempts=attempts, last_error=error,
                               not_before=utcnow() + dt.timedelta(hours=1)))
        db.execute(update(OptOutRequest).where(OptOutRequest.id == request_id).values(**values))
        db.commit()


def seed_every_state(app, make_person) -> tuple[dict[str, str], Secrets]:
    """One request in each state, by real people with emails, accounts and handles: {state: request id}."""
    now, days = utcnow(), dt.timedelta(days=1)
    secrets = Secrets()
    ids = {}
    # Requested so that each deadline (30 days on) falls where the state needs it.
    ids["received"] = person_leaves(app, make_person, secrets, requested_at=now - 10 * days + HALF_HOUR, n=1)
    ids["in_progress"] = person_leaves(app, make_person, secrets, requested_at=now - 20 * days + HALF_HOUR, n=2)
    ids["needs_attention"] = person_leaves(app, make_person, secrets, requested_at=now - 25 * days + HALF_HOUR, n=3)
    ids["overdue"] = person_leaves(app, make_person, secrets, requested_at=now - 32 * days - HALF_HOUR, n=4)
    ids["completed"] = person_leaves(app, make_person, secrets, requested_at=now - 3 * days, n=5)
    set_state(app, ids["in_progress"], "in_progress")
    set_state(app, ids["needs_attention"], "needs_attention",
              failing=("needs_attention", 6, "HTTP 503 from Demo Social"))
    set_state(app, ids["overdue"], "in_progress", failing=("retrying", 3, "the network timed out"))
    set_state(app, ids["completed"], "completed", completed_at=now - 3 * days + dt.timedelta(minutes=4))
    return ids, secrets


def bulk_requests(app, count: int, now: dt.datetime | None = None) -> list[str]:
    """`count` requests with two steps each, spread over every state and band, in two statements."""
    now = now or utcnow()
    statuses = ["received", "in_progress", "needs_attention", "completed"]
    requests, steps = [], []
    for n in range(count):
        status = statuses[n % 4]
        requested = now - dt.timedelta(days=(n * 7) % 40, minutes=n)  # some past their 30-day deadline
        request_id = str(uuid.UUID(int=uuid.uuid4().int))
        completed = requested + dt.timedelta(hours=1 + n % 5) if status == "completed" else None
        requests.append({
            "id": request_id, "scope": "all" if n % 3 else "demo", "source": "service", "status": status,
            "requested_at": requested, "deadline": requested + dt.timedelta(days=30), "completed_at": completed,
            "secret_hash": hashlib.sha256(request_id.encode()).hexdigest(), "subject_commitment": "x" * 43,
            "identity_kinds": {"account": 1}, "show_opted_out": True})
        for position, kind in enumerate(("revoke", "purge"), start=1):
            steps.append({"id": str(uuid.uuid4()), "request_id": request_id, "position": position,
                          "phase": position, "kind": kind, "target": "demo" if kind == "revoke" else "platform/posts",
                          "status": "done" if status == "completed" else "pending", "attempts": n % 3,
                          "not_before": requested, "params": {}, "result": {}})
    with db_session(app) as db:
        db.execute(insert(OptOutRequest), requests)
        db.execute(insert(ErasureStep), steps)
        db.commit()
    return [r["id"] for r in requests]


def grow_log(app, count: int) -> None:
    """Append `count` entries to the transparency log directly, each signing a checkpoint."""
    from erasure.receipts import tlog

    ctx = context_from_app(app)
    vault, origin = ctx.vault, ctx.log_origin
    for n in range(count):
        with db_session(app) as db:
            tlog.lock(db)
            tlog.append(db, vault, origin, f"entry {n}".encode(), utcnow())
            db.commit()
