"""The opt-out API's schemas: strict input, separate output, no personal data in any answer."""
from __future__ import annotations

import datetime as dt
import re

from marshmallow import ValidationError, fields, validate, validates_schema

from app.openapi import QueryBoolean, QueryInteger, StrictSchema, Text
from erasure.models import RequestStatus, StepKind, StepStatus

MAX_IDENTITIES = 1000
MAX_OPTOUT_IDENTITIES = 50
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
# The API keeps the kinds its callers know: a forget step is shown as a purge (see api._step).
PUBLIC_STEP_KINDS = [k.value for k in StepKind if k is not StepKind.FORGET]


class IdentitySchema(StrictSchema):
    # The document says what network_when_needed checks: email alone, account and handle with a network.
    OPENAPI = {"oneOf": [
        {"properties": {"kind": {"enum": ["email"]}}, "not": {"required": ["network"]}},
        {"properties": {"kind": {"enum": ["account", "handle"]}}, "required": ["network"]},
    ]}

    kind = fields.String(required=True, validate=validate.OneOf(("email", "account", "handle")))
    network = Text(validate=validate.Length(1, 64), metadata={"description": "For account and handle."})
    value = Text(required=True, validate=validate.Length(1, 320), metadata={
        "description": "An email address, or the account id or handle at the network; not blank."})

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


class SuppressionResultSchema(StrictSchema):
    suppressed = fields.Boolean(required=True)
    reason = fields.String(allow_none=True, required=True, validate=validate.OneOf(("opted_out",)), metadata={
        "description": "opted_out; null when not suppressed, or when the owner asked that the reason not be shown."})


class SuppressionAnswerSchema(StrictSchema):
    results = fields.List(fields.Nested(SuppressionResultSchema), required=True,
                          metadata={"description": "One per identity, in the order asked."})


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
    status = fields.String(validate=validate.OneOf(list(RequestStatus)))
    overdue = QueryBoolean(metadata={"description": "true: past the deadline and not completed; false: the rest."})
    network = Text(validate=validate.Length(1, 64), metadata={
        "description": "Only opt-outs that revoke access at this network."})
    agent = Text(validate=validate.Length(1, 64), metadata={
        "description": "Only opt-outs an authorized agent sent (Data Rights Protocol): its agent-id."})
    since = UTCDateTime(metadata={"description": "Requested at or after (ISO 8601 with zone)."})
    until = UTCDateTime(metadata={"description": "Requested before (ISO 8601 with zone)."})
    limit = QueryInteger(load_default=50, validate=validate.Range(1, 200))
    cursor = Text(validate=validate.Length(1, 200), metadata={"description": "next of the page before."})


class StepSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(PUBLIC_STEP_KINDS), metadata={
        "description": "What the step does: revoke access at a network, purge a store's rows, verify that nothing is "
                       "left, sign the receipt, notify the person. Deleting this service's own records of the person "
                       'is shown as a purge step with the target "ownstory".'})
    target = fields.String(required=True, metadata={
        "description": 'What the step acts on: a network key (revoke), "store/category" (purge), or "ownstory" '
                       "(purge of this service's own records)."})
    status = fields.String(required=True, validate=validate.OneOf(list(StepStatus)))
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True, required=True)
    done_at = fields.AwareDateTime(allow_none=True, required=True)


class OptOutSchema(StrictSchema):
    id = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(list(RequestStatus)))
    scope = fields.String(required=True, metadata={"description": '"all" or a network key.'})
    source = fields.String(required=True, validate=validate.OneOf(("person", "service", "forget", "agent")))
    requested_at = fields.AwareDateTime(required=True)
    deadline = fields.AwareDateTime(required=True)
    completed_at = fields.AwareDateTime(allow_none=True, required=True)
    overdue = fields.Boolean(required=True)
    identity_kinds = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                                 metadata={"description": "How many identities of each kind; never their values."})
    receipt_id = fields.UUID(allow_none=True, required=True)


class OptOutDetailSchema(OptOutSchema):
    steps = fields.List(fields.Nested(StepSchema), required=True)


class OptOutPageSchema(StrictSchema):
    items = fields.List(fields.Nested(OptOutSchema), required=True)
    next = fields.String(allow_none=True, required=True, metadata={"description": "The cursor of the next page; "
                                                                                  "null on the last."})
