"""The erasure API: opt-outs for services and operators, and the suppression check."""
from __future__ import annotations

import base64
import datetime as dt
import json

from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from app.auth import api_roles
from app.db import utcnow
from app.errors import ApiError
from app.extensions import db
from app.mail import MailError
from app.models import User
from consent.models import Grant
from consent.suppression import Identity, lookup
from erasure import mail_text, service
from erasure.context import context_from_app
from erasure.models import ErasureStep, OptOutRequest
from erasure.schemas import (
    OptOutCreateSchema,
    OptOutDetailSchema,
    OptOutPageSchema,
    OptOutQuerySchema,
    OptOutSchema,
    SuppressionAnswerSchema,
    SuppressionCheckSchema,
)

blp = Blueprint("erasure_api", __name__, url_prefix="/api/v1", description="Opt-outs and the suppression list.")


def _identity(raw: dict) -> Identity:
    return Identity(raw["kind"], raw["value"].strip().lower() if raw["kind"] == "email" else raw["value"],
                    raw.get("network"))


@blp.route("/suppressions/check", methods=["POST"])
@api_roles("service")
@blp.arguments(SuppressionCheckSchema)
@blp.response(200, SuppressionAnswerSchema)
def suppressions_check(body: dict):
    """Has the owner of each identity opted out? One query for the whole batch."""
    found = lookup(db.session, current_app.extensions["ownstory_peppers"], [_identity(i) for i in body["identities"]])
    return {"results": [{"suppressed": row is not None,
                         "reason": "opted_out" if row is not None and row.show_opted_out else None} for row in found]}


@blp.route("/optouts", methods=["POST"])
@api_roles("service")
@blp.arguments(OptOutCreateSchema)
@blp.response(202, OptOutSchema)
def create_optout(body: dict):
    """Opt a person out on their behalf, from another system. Everything of theirs that is known goes."""
    ctx = context_from_app(current_app)
    identities = [_identity(i) for i in body["identities"]]
    for i in identities:
        if i.network is not None and i.network not in ctx.networks:
            raise ApiError(422, "invalid", f"unknown network {i.network!r}")
    db.session.commit()
    user = _owner(identities)
    grants = list(db.session.scalars(select(Grant).where(Grant.user_id == user.id))) if user else []
    email = next((i.value for i in identities if i.kind == "email"), None)
    submitted = service.submit(db.session, ctx, user=user, grants=grants, scope="all", now=utcnow(),
                               email=email, given=identities, source="service")
    db.session.commit()
    contact = email or (service.open_identities(ctx, submitted.request).email if user else None)
    if contact:
        try:
            ctx.mailer.send(contact, *mail_text.submitted(submitted.request, ctx.base_url + submitted.status_path))
        except MailError:
            pass  # the request stands; the outcome mail is retried by the worker
    return _summary(submitted.request)


def _owner(identities: list[Identity]) -> User | None:
    """The one signed-up person these identities belong to, if any."""
    owners: set[str] = set()
    emails = [i.value for i in identities if i.kind == "email"]
    if emails:
        owners |= set(db.session.scalars(select(User.id).where(User.email.in_(emails), User.role == "person")))
    accounts = [(i.network, i.value) for i in identities if i.kind == "account"]
    for network, value in accounts:
        owners |= set(db.session.scalars(select(Grant.user_id).where(Grant.network == network,
                                                                     Grant.account_id == value)))
    if len(owners) > 1:
        raise ApiError(409, "conflict", "These identities belong to more than one person; send one request each.")
    return db.session.get(User, owners.pop()) if owners else None


@blp.route("/optouts", methods=["GET"])
@api_roles("operator")
@blp.arguments(OptOutQuerySchema, location="query")
@blp.response(200, OptOutPageSchema)
def list_optouts(query: dict):
    """Opt-outs, newest first, with filters and a cursor. Never personal data."""
    now = utcnow()
    stmt = select(OptOutRequest).order_by(OptOutRequest.requested_at.desc(), OptOutRequest.id.desc())
    if "status" in query:
        stmt = stmt.where(OptOutRequest.status == query["status"])
    if query.get("overdue") is True:
        stmt = stmt.where(OptOutRequest.status != "completed", OptOutRequest.deadline < now)
    elif query.get("overdue") is False:
        stmt = stmt.where(or_(OptOutRequest.status == "completed", OptOutRequest.deadline >= now))
    if "network" in query:
        stmt = stmt.where(OptOutRequest.id.in_(
            select(ErasureStep.request_id).where(ErasureStep.kind == "revoke", ErasureStep.target == query["network"])))
    if "since" in query:
        stmt = stmt.where(OptOutRequest.requested_at >= query["since"])
    if "until" in query:
        stmt = stmt.where(OptOutRequest.requested_at < query["until"])
    if "cursor" in query:
        at, last_id = _decode_cursor(query["cursor"])
        stmt = stmt.where(or_(OptOutRequest.requested_at < at,
                              and_(OptOutRequest.requested_at == at, OptOutRequest.id < last_id)))
    rows = list(db.session.scalars(stmt.limit(query["limit"] + 1)))
    more = len(rows) > query["limit"]
    rows = rows[: query["limit"]]
    return {"items": [_summary(r, now) for r in rows],
            "next": _encode_cursor(rows[-1]) if more and rows else None}


@blp.route("/optouts/<request_id>", methods=["GET"])
@api_roles("operator")
@blp.response(200, OptOutDetailSchema)
def get_optout(request_id: str):
    """One opt-out with every step: attempts, last error, when done."""
    request = _get(request_id)
    return {**_summary(request), "steps": [_step(s) for s in request.steps]}


@blp.route("/optouts/<request_id>/retry", methods=["POST"])
@api_roles("operator")
@blp.response(200, OptOutDetailSchema)
def retry_optout(request_id: str):
    """Run every step that needs attention (or is waiting to retry) again, now."""
    db.session.commit()
    request = _get(request_id)
    from erasure.operations import retry_now

    retry_now(db.session, request, utcnow())
    db.session.commit()
    return {**_summary(request), "steps": [_step(s) for s in request.steps]}


def _get(request_id: str) -> OptOutRequest:
    request = db.session.scalar(select(OptOutRequest).options(selectinload(OptOutRequest.steps))
                                .where(OptOutRequest.id == request_id[:36]))
    if request is None:
        raise ApiError(404, "not_found", "No opt-out with that id.")
    return request


def _summary(r: OptOutRequest, now: dt.datetime | None = None) -> dict:
    now = now or utcnow()
    return {"id": r.id, "status": r.status, "scope": r.scope, "source": r.source, "requested_at": r.requested_at,
            "deadline": r.deadline, "completed_at": r.completed_at,
            "overdue": r.status != "completed" and r.deadline < now,
            "identity_kinds": r.identity_kinds or {}, "receipt_id": r.receipt_id}


def _step(s: ErasureStep) -> dict:
    return {"kind": s.kind, "target": s.target, "status": s.status, "attempts": s.attempts,
            "last_error": s.last_error, "done_at": s.done_at}


def _encode_cursor(r: OptOutRequest) -> str:
    raw = json.dumps([r.requested_at.isoformat(), r.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[dt.datetime, str]:
    try:
        at, last_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return dt.datetime.fromisoformat(at), str(last_id)
    except (ValueError, TypeError):
        raise ApiError(400, "bad_request", "The cursor is not one this API gave out.") from None
