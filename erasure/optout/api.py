"""The erasure API: opt-outs for services and operators, and the suppression check."""
from __future__ import annotations

import datetime as dt
import json
import uuid

from flask import current_app
from flask_login import current_user
from marshmallow import RAISE
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from app import audit
from app.api_blueprint import Blueprint
from app.auth import bearer
from app.db import utcnow
from app.errors import ApiError
from app.extensions import db
from app.mail import MailError
from app.text import b64url, b64url_decode
from consent.suppression import Identity, lookup
from erasure.agents.models import AuthorizedAgent, sent_through
from erasure.context import context_from_app
from erasure.models import ErasureStep, OptOutRequest, RequestStatus, StepKind
from erasure.optout import behalf, mail_text, service
from erasure.optout.operations import retry_now
from erasure.optout.schemas import (
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
    value = raw["value"].strip()
    return Identity(raw["kind"], value.lower() if raw["kind"] == "email" else value, raw.get("network"))


def _known_networks(raw_identities: list[dict]) -> None:
    """A network we do not know is a mistake to name, not an identity to answer "no" for."""
    networks = current_app.extensions["networks"]
    unknown = {str(n): {"network": [f"unknown network {raw['network']!r}"]}
               for n, raw in enumerate(raw_identities) if raw.get("network") not in (None, *networks)}
    if unknown:
        first = next(iter(unknown))
        raise ApiError(422, "invalid", f"identities[{first}].network is not a network this service knows.",
                       {"identities": unknown})


# bearer sits above arguments, so a caller without the role is refused before its body is read.
@blp.route("/suppressions/check", methods=["POST"])
@bearer("service")
@blp.arguments(SuppressionCheckSchema)
@blp.response(200, SuppressionAnswerSchema)
def suppressions_check(body: dict):
    """Has the owner of each identity opted out? One query for the whole batch, answered in order."""
    _known_networks(body["identities"])
    asked = [_identity(i) for i in body["identities"]]
    # The same identity may be asked twice (Liz@ and liz@): look each up once, answer every time.
    unique = list(dict.fromkeys(i.canonical() for i in asked))
    by_canonical = {i.canonical(): i for i in asked}
    found = dict(zip(unique, lookup(db.session, current_app.extensions["ownstory_peppers"],
                                    [by_canonical[c] for c in unique]), strict=True))
    rows = [found[i.canonical()] for i in asked]
    return {"results": [{"suppressed": row is not None,
                         "reason": "opted_out" if row is not None and row.show_opted_out else None} for row in rows]}


@blp.route("/optouts", methods=["POST"])
@bearer("service")
@blp.arguments(OptOutCreateSchema)
@blp.response(202, OptOutSchema)
@blp.alt_response(409, response="Conflict", description="The identities belong to more than one person.")
def create_optout(body: dict):
    """Opt a person out on their behalf, from another system. Everything of theirs that is known goes.

    The answer is the request, without its status link: that link is the person's, and is mailed to them.
    While an opt-out of the same identities is open, the answer is that request (same id, same
    requested_at), and nothing new is made: no second request, receipt or mail. Calling again is safe.
    """
    _known_networks(body["identities"])
    ctx = context_from_app(current_app)
    identities = list({i.canonical(): i for i in (_identity(raw) for raw in body["identities"])}.values())
    try:
        with db.writing():  # ends the token lookup's transaction: the owner is read under the write lock
            service.lock(db.session)
            submitted, request = _submit(ctx, identities)
    except service.AlreadyLeaving as already:
        return _summary(already.request)  # still being processed: 202, as the first answer was
    contact = service.open_contact(ctx, request)
    if contact:
        try:
            ctx.mailer.send(contact, *mail_text.submitted(request, ctx.base_url + submitted.status_path))
        except MailError:
            pass  # the request stands; the outcome mail is retried by the worker
    return _summary(request)


def _submit(ctx, identities: list[Identity]) -> tuple[service.Submitted, OptOutRequest]:
    try:
        submitted, _user = behalf.submit_on_behalf(db.session, ctx, identities, utcnow(), source="service")
    except behalf.SeveralOwners as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return submitted, submitted.request


@blp.route("/optouts", methods=["GET"])
@bearer("operator")
@blp.arguments(OptOutQuerySchema, location="query", unknown=RAISE)  # a misspelt filter must not widen the list
@blp.response(200, OptOutPageSchema)
@blp.alt_response(400, response="BadRequest")
def list_optouts(query: dict):
    """Opt-outs, newest first, with filters and a cursor. Never personal data."""
    now = utcnow()
    stmt = select(OptOutRequest).order_by(OptOutRequest.requested_at.desc(), OptOutRequest.id.desc())
    if "status" in query:
        stmt = stmt.where(OptOutRequest.status == query["status"])
    if query.get("overdue") is True:
        stmt = stmt.where(OptOutRequest.status != RequestStatus.COMPLETED, OptOutRequest.deadline < now)
    elif query.get("overdue") is False:
        stmt = stmt.where(or_(OptOutRequest.status == RequestStatus.COMPLETED, OptOutRequest.deadline >= now))
    if "network" in query:
        stmt = stmt.where(OptOutRequest.id.in_(
            select(ErasureStep.request_id).where(ErasureStep.kind == StepKind.REVOKE,
                                                 ErasureStep.target == query["network"])))
    if "agent" in query:
        if db.session.get(AuthorizedAgent, query["agent"]) is None:
            raise ApiError(400, "bad_request", "No authorized agent has that id.")
        stmt = stmt.where(sent_through(query["agent"]))
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


REQUEST_ID = [{"in": "path", "name": "request_id", "schema": {"type": "string", "format": "uuid"},
               "description": "The opt-out's id: a UUID in lower case."}]


@blp.route("/optouts/<request_id>", methods=["GET"], parameters=REQUEST_ID)
@bearer("operator")
@blp.response(200, OptOutDetailSchema)
def get_optout(request_id: str):
    """One opt-out with every step: attempts, last error, when done."""
    return _detail(_get(request_id))


@blp.route("/optouts/<request_id>/retry", methods=["POST"], parameters=REQUEST_ID)
@bearer("operator")
@blp.response(200, OptOutDetailSchema)
def retry_optout(request_id: str):
    """Make every step that needs attention (or is waiting to retry) due now. Answers the request as it is then."""
    _checked_id(request_id)
    with db.writing():  # ends the token lookup's transaction: the steps are read under the write lock
        steps = retry_now(db.session, _get(request_id), utcnow())
        audit.record(db.session, **audit.actor_of(current_user), action="optout_retry", target=request_id,
                     details={"steps": steps}, now=utcnow())  # in the retry's transaction: both or neither
    return _detail(_get(request_id))


def _checked_id(request_id: str) -> str:
    """Ids are UUIDs in their one canonical form; anything else names no opt-out."""
    try:
        if str(uuid.UUID(request_id)) == request_id:
            return request_id
    except ValueError:
        pass
    raise ApiError(404, "not_found", "No opt-out with that id.")


def _get(request_id: str) -> OptOutRequest:
    # populate_existing: after a retry, the steps already in the session are read again, not reused.
    request = db.session.scalar(select(OptOutRequest).options(selectinload(OptOutRequest.steps))
                                .where(OptOutRequest.id == _checked_id(request_id))
                                .execution_options(populate_existing=True))
    if request is None:
        raise ApiError(404, "not_found", "No opt-out with that id.")
    return request


def _summary(r: OptOutRequest, now: dt.datetime | None = None) -> dict:
    now = now or utcnow()
    return {"id": r.id, "status": r.status, "scope": r.scope, "source": r.source, "requested_at": r.requested_at,
            "deadline": r.deadline, "completed_at": r.completed_at,
            "overdue": r.status != RequestStatus.COMPLETED and r.deadline < now,
            "identity_kinds": r.identity_kinds or {}, "receipt_id": r.receipt_id}


def _detail(r: OptOutRequest) -> dict:
    return {**_summary(r), "steps": [_step(s) for s in r.steps]}


def _step(s: ErasureStep) -> dict:
    kind, target = s.kind, s.target
    if kind == StepKind.FORGET:  # the API's callers know it as a purge of Ownstory's own records
        kind, target = StepKind.PURGE, service.OWN_RECORDS
    return {"kind": kind, "target": target, "status": s.status, "attempts": s.attempts,
            "last_error": s.last_error, "done_at": s.done_at}


def _encode_cursor(r: OptOutRequest) -> str:
    raw = json.dumps([r.requested_at.isoformat(), r.id]).encode()
    return b64url(raw)


def _decode_cursor(text: str) -> tuple[dt.datetime, str]:
    """The (requested_at, id) of the last item of the page before; anything else is refused with 400."""
    try:
        decoded = json.loads(b64url_decode(text))
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise ValueError("not a cursor")
        at, last_id = decoded
        when = dt.datetime.fromisoformat(at)
        # The id goes into the query: only an opt-out id (a canonical UUID), never a NUL PostgreSQL refuses.
        if when.tzinfo is None or not isinstance(last_id, str) or str(uuid.UUID(last_id)) != last_id:
            raise ValueError("not a cursor")
        return when.astimezone(dt.UTC), last_id
    except (ValueError, TypeError, OverflowError):
        raise ApiError(400, "bad_request", "The cursor is not one this API gave out.") from None
