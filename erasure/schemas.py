"""The erasure API's schemas: strict input, separate output, no personal data in any answer."""
from __future__ import annotations

import datetime as dt
import re

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from erasure.models import REQUEST_STATUSES, STEP_KINDS, STEP_STATUSES

MAX_IDENTITIES = 1000
MAX_OPTOUT_IDENTITIES = 50
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class IdentitySchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(("email", "account", "handle")))
    network = fields.String(validate=validate.Length(1, 64), metadata={"description": "For account and handle."})
    value = fields.String(required=True, validate=validate.Length(1, 320))

    @validates_schema
    def network_when_needed(self, data: dict, **_kwargs) -> None:
        if data.get("kind") in ("account", "handle") and not data.get("network"):
            raise ValidationError("account and handle identities need a network.", "network")
        if data.get("kind") == "email" and "network" in data:
            raise ValidationError("an email identity takes no network.", "network")

    @validates_schema
    def value_names_someone(self, data: dict, **_kwargs) -> None:
        value = data.get("value", "").strip()
        if not value:
            raise ValidationError("may not be blank.", "value")
        if data.get("kind") == "email" and not EMAIL.fullmatch(value):
            raise ValidationError("not an email address.", "value")


class SuppressionCheckSchema(StrictSchema):
    identities = fields.List(fields.Nested(IdentitySchema), required=True,
                             validate=validate.Length(1, MAX_IDENTITIES))


class SuppressionResultSchema(Schema):
    suppressed = fields.Boolean(required=True)
    reason = fields.String(allow_none=True, required=True, metadata={"description": '"opted_out" or null'})


class SuppressionAnswerSchema(Schema):
    results = fields.List(fields.Nested(SuppressionResultSchema), required=True)


class OptOutCreateSchema(StrictSchema):
    identities = fields.List(fields.Nested(IdentitySchema), required=True,
                             validate=validate.Length(1, MAX_OPTOUT_IDENTITIES))
    scope = fields.String(required=True, validate=validate.Equal("all"), metadata={
        "description": 'Only "all": a platform cannot choose a narrower scope for a person.'})


class UTCDateTime(fields.AwareDateTime):
    """An ISO 8601 time with its zone, brought to UTC; one that UTC cannot hold is invalid, not a 500."""

    def _deserialize(self, value, attr, data, **kwargs) -> dt.datetime:
        aware = super()._deserialize(value, attr, data, **kwargs)
        try:
            return aware.astimezone(dt.UTC)
        except OverflowError:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


class OptOutQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))
    overdue = fields.Boolean(truthy={"true", "1"}, falsy={"false", "0"})
    network = fields.String(validate=validate.Length(1, 64), metadata={
        "description": "Only opt-outs that revoke access at this network."})
    since = UTCDateTime(metadata={"description": "Requested at or after (ISO 8601 with zone)."})
    until = UTCDateTime(metadata={"description": "Requested before (ISO 8601 with zone)."})
    limit = fields.Integer(strict=False, load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(validate=validate.Length(1, 200))


class StepSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(STEP_KINDS))
    target = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STEP_STATUSES))
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    done_at = fields.AwareDateTime(allow_none=True)


class OptOutSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(REQUEST_STATUSES))
    scope = fields.String(required=True)
    source = fields.String(required=True)
    requested_at = fields.AwareDateTime(required=True)
    deadline = fields.AwareDateTime(required=True)
    completed_at = fields.AwareDateTime(allow_none=True)
    overdue = fields.Boolean(required=True)
    identity_kinds = fields.Dict(keys=fields.String(), values=fields.Integer(),
                                 metadata={"description": "How many identities of each kind; never their values."})
    receipt_id = fields.String(allow_none=True)


class OptOutDetailSchema(OptOutSchema):
    steps = fields.List(fields.Nested(StepSchema), required=True)


class OptOutPageSchema(Schema):
    items = fields.List(fields.Nested(OptOutSchema), required=True)
    next = fields.String(allow_none=True, required=True)
