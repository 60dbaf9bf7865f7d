"""The consent check API's schemas: strict input, and the answer's shape."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from app.openapi import StrictSchema, Text
from consent.service import REASONS

MAX_CHECKS = 1000


class CheckSchema(StrictSchema):
    OPENAPI = {"oneOf": [{"required": ["account"]}, {"required": ["subject"]}]}  # what exactly_one_identity checks

    network = Text(required=True, validate=validate.Length(1, 64),
                   metadata={"description": "A network key from the catalogue.", "example": "acme"})
    purpose = Text(required=True, validate=validate.Length(1, 64),
                   metadata={"description": "A purpose key from the catalogue.", "example": "scoring"})
    account = Text(validate=validate.Length(1, 255),
                   metadata={"description": "The account id at the network. Give this or subject."})
    subject = Text(validate=validate.Length(1, 64),
                   metadata={"description": "The Ownstory subject id. Give this or account."})

    @validates_schema
    def exactly_one_identity(self, data: dict, **_kwargs) -> None:
        given = [k for k in ("account", "subject") if k in data]
        if len(given) != 1:
            raise ValidationError("Give exactly one of account and subject.", "_schema")


class CheckRequestSchema(StrictSchema):
    checks = fields.List(fields.Nested(CheckSchema), required=True, validate=validate.Length(1, MAX_CHECKS),
                         metadata={"description": f"1 to {MAX_CHECKS} checks, answered in the same order."})


class CheckResultSchema(StrictSchema):
    allowed = fields.Boolean(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(REASONS), metadata={
        "description": "granted is the only reason that allows; opted_out outranks every other."})


class CheckResponseSchema(StrictSchema):
    results = fields.List(fields.Nested(CheckResultSchema), required=True,
                          metadata={"description": "One per check, in the order asked."})
