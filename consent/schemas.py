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


IDENTITIES = ("account", "subject")
LONGEST = {"network": 64, "purpose": 64, "account": 255, "subject": 64}  # CheckSchema's Length validators


def _plain(check: object) -> bool:
    """Whether CheckSchema would load this check unchanged: its fields and no other, exactly one identity,
    each value a string of an allowed length that UTF-8 can encode, without a NUL."""
    if type(check) is not dict or len(check) != 3 or "network" not in check or "purpose" not in check:
        return False
    for name, value in check.items():
        longest = LONGEST.get(name)
        if longest is None or type(value) is not str or not 0 < len(value) <= longest or "\x00" in value:
            return False
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return ("account" in check) != ("subject" in check)


class Checks(fields.List):
    """The list of checks. A batch of plain checks (nearly every batch) is taken as it is, with one look at
    each; any other goes through CheckSchema, which names what is wrong with each check exactly as before.
    A thousand nested loads cost more than the check's own queries."""

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is list and all(_plain(check) for check in value):
            return [dict(check) for check in value]
        return super()._deserialize(value, attr, data, **kwargs)


class CheckRequestSchema(StrictSchema):
    checks = Checks(fields.Nested(CheckSchema), required=True, validate=validate.Length(1, MAX_CHECKS),
                    metadata={"description": f"1 to {MAX_CHECKS} checks, answered in the same order."})


class CheckResultSchema(StrictSchema):
    allowed = fields.Boolean(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(REASONS), metadata={
        "description": "granted is the only reason that allows; opted_out outranks every other."})


class CheckResponseSchema(StrictSchema):
    results = fields.List(fields.Nested(CheckResultSchema), required=True,
                          metadata={"description": "One per check, in the order asked."})
