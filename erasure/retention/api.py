"""The operators' view of retention sweeps: when each ran and how many rows it purged, per data-map entry."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from app.api_blueprint import Blueprint
from app.auth import bearer
from app.extensions import db
from app.openapi import QueryInteger, StrictSchema
from erasure.models import SWEEP_STATUSES, RetentionSweep
from erasure.retention.sweeps import REASONS

blp = Blueprint("retention_api", __name__, url_prefix="/api/v1",
                description="Retention sweeps: what the worker purged on its schedule, in counts.")


class SweepQuerySchema(StrictSchema):
    limit = QueryInteger(load_default=20, validate=validate.Range(1, 200))


class SweepEntrySchema(Schema):
    store = fields.String(required=True)
    table = fields.String(required=True)
    column = fields.String(required=True)
    category = fields.String(required=True)
    past_retention = fields.Integer(required=True, metadata={"description": "Rows older than retention_days."})
    expired_grant = fields.Integer(required=True, metadata={"description": "Rows of accounts whose grant expired."})
    reappeared = fields.Integer(required=True, metadata={
        "description": "Rows that came in again for an identity on the suppression list."})
    rows = fields.Integer(required=True)


class SweepErrorSchema(Schema):
    store = fields.String()
    table = fields.String()
    column = fields.String()
    reason = fields.String(required=True, validate=validate.OneOf((*REASONS, "sweep")))
    error = fields.String(required=True)


class SweepSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(SWEEP_STATUSES))
    worker = fields.String(required=True, attribute="owner")
    started_at = fields.AwareDateTime(required=True)
    finished_at = fields.AwareDateTime(allow_none=True, required=True)
    rows = fields.Integer(required=True)
    entries = fields.List(fields.Nested(SweepEntrySchema), required=True)
    errors = fields.List(fields.Nested(SweepErrorSchema), required=True)


class SweepPageSchema(Schema):
    items = fields.List(fields.Nested(SweepSchema), required=True)


@blp.route("/sweeps", methods=["GET"])
@bearer("operator")
@blp.arguments(SweepQuerySchema, location="query", unknown=RAISE)
@blp.response(200, SweepPageSchema)
def list_sweeps(query: dict):
    """The latest retention sweeps, newest first. Counts only, never an identity."""
    rows = db.session.scalars(select(RetentionSweep)
                              .order_by(RetentionSweep.started_at.desc(), RetentionSweep.id.desc())
                              .limit(query["limit"]))
    return {"items": list(rows)}
