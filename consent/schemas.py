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


LONGEST = {"network": 64, "purpose": 64, "account": 255, "subject": 64}  # CheckSchema's Length validators
BY_ACCOUNT, BY_SUBJECT = frozenset(("network", "purpose", "account")), frozenset(("network", "purpose", "subject"))


def _plain(checks: object) -> bool:
    """Whether CheckSchema would load every check unchanged: its fields and no other, exactly one identity,
    each value a string of an allowed length that UTF-8 can encode, without a NUL. One pass over the batch,
    then one look at all its text together (a thousand checks a batch)."""
    if type(checks) is not list:
        return False
    texts = []
    for check in checks:
        if type(check) is not dict:
            return False
        fields_given = check.keys()  # compares with a set as a set does
        if fields_given == BY_ACCOUNT:
            identity = "account"
        elif fields_given == BY_SUBJECT:
            identity = "subject"
        else:
            return False
        for name in ("network", "purpose", identity):
            value = check[name]
            if type(value) is not str or not 0 < len(value) <= LONGEST[name]:
                return False
            texts.append(value)
    joined = "".join(texts)
    if "\x00" in joined:
        return False
    if not joined.isascii():
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


class Checks(fields.List):
    """The list of checks. A batch of plain checks (nearly every batch) is taken as it is, after one look at
    the batch; any other goes through CheckSchema, which names what is wrong with each check exactly as before.
    A thousand nested loads cost more than the check's own queries."""

    def _deserialize(self, value, attr, data, **kwargs):
        if _plain(value):
            return value
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
