"""The audit trail's read API, GET /api/v1/audit, for operators and auditors (people and services get 403)."""
from __future__ import annotations

from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from app import audit
from app.api_blueprint import Blueprint
from app.auth import bearer
from app.errors import ApiError
from app.extensions import db
from app.models import ACTOR_KINDS, AuditEvent
from app.openapi import QueryInteger, StrictSchema
from app.text import b64url, b64url_decode

blp = Blueprint("audit_api", __name__, url_prefix="/api/v1",
                description="The audit trail: who did what, hash-chained; for operators and auditors.")

CURSOR_PREFIX = "seq:"


class AuditQuerySchema(StrictSchema):
    limit = QueryInteger(load_default=50, validate=validate.Range(1, 500))
    cursor = fields.String(validate=validate.Length(1, 64), metadata={"description": "`next` of the page before."})


class AuditEventSchema(Schema):
    seq = fields.Integer(required=True)
    at = fields.AwareDateTime(required=True)
    actor_kind = fields.String(required=True, validate=validate.OneOf(ACTOR_KINDS))
    actor_id = fields.String(allow_none=True, required=True,
                             metadata={"description": "A user or API token id; null for anonymous and system."})
    action = fields.String(required=True)
    target = fields.String(allow_none=True, required=True)
    outcome = fields.String(required=True)
    details = fields.Dict(keys=fields.String(), required=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema), required=True)
    next = fields.String(allow_none=True, required=True)


@blp.route("/audit", methods=["GET"])
@bearer("operator", "auditor")
@blp.arguments(AuditQuerySchema, location="query", unknown=RAISE)
@blp.response(200, AuditPageSchema)
@blp.alt_response(400, response="BadRequest")
def list_events(query: dict):
    """The trail, newest first, with a cursor. Reading it is itself recorded."""
    stmt = select(AuditEvent).order_by(AuditEvent.seq.desc())
    if "cursor" in query:
        stmt = stmt.where(AuditEvent.seq < _decode_cursor(query["cursor"]))
    rows = [_item(e) for e in db.session.scalars(stmt.limit(query["limit"] + 1))]
    more = len(rows) > query["limit"]
    rows = rows[: query["limit"]]
    db.session.commit()  # end the read before the append's own transaction
    audit.record_now(**audit.actor_of(current_user), action="audit_read",
                     details={"count": len(rows), "from_seq": rows[0]["seq"] if rows else None})
    return {"items": rows, "next": _encode_cursor(rows[-1]["seq"]) if more and rows else None}


def _item(e: AuditEvent) -> dict:
    return {"seq": e.seq, "at": e.at, "actor_kind": e.actor_kind, "actor_id": e.actor_id, "action": e.action,
            "target": e.target, "outcome": e.outcome, "details": e.details or {}, "prev_hash": e.prev_hash,
            "hash": e.hash}


def _encode_cursor(seq: int) -> str:
    return b64url(f"{CURSOR_PREFIX}{seq}".encode())


def _decode_cursor(text: str) -> int:
    try:
        raw = b64url_decode(text).decode("ascii")
        digits = raw[len(CURSOR_PREFIX):]
        if not raw.startswith(CURSOR_PREFIX) or not digits.isascii() or not digits.isdigit() or len(digits) > 10:
            raise ValueError("not a cursor")
        if int(digits) > 2**31 - 1:  # audit_events.seq is a 32-bit integer on PostgreSQL
            raise ValueError("not a cursor")
        return int(digits)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_request", "The cursor is not one this API gave out.") from None
