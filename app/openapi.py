"""The OpenAPI document's shared parts: strict fields, the error body, the bearer scheme, every operation's errors.

flask-smorest writes the document from the marshmallow schemas; what it cannot see, this module adds: who may
call an operation (app.auth's `bearer` and `anyone` on the view), and the errors every operation can answer, which
ErrorsPlugin derives from the operation itself (a body can be malformed or too large, a path can name
nothing, a token can be missing or of the wrong role), so no view can forget one.
"""
from __future__ import annotations

import copy
import re

from apispec import BasePlugin
from marshmallow import RAISE, Schema, fields

DESCRIPTION = (
    "Ownstory's API for programs. Callers send `Authorization: Bearer <token>`, never cookies; "
    "each operation's `x-roles` lists the token roles it accepts, and `security: []` marks those open to anyone. "
    'Every error is `{"error": {"code", "message"}}`, with `fields` saying where an input is wrong. Bodies and '
    "queries are strict: unknown fields, strings where booleans or integers belong, and 1.0 for an integer are "
    "refused with 422."
)
BEARER = "bearerAuth"
ROLES = "x-roles"  # OpenAPI 3.0 gives a bearer scheme no scopes, so the roles go in an extension


class StrictSchema(Schema):
    """Unknown fields are refused with 422, and the document says so (additionalProperties: false)."""

    class Meta:
        unknown = RAISE


class Text(fields.String):
    """A string a database can hold and UTF-8 can encode: no NUL (PostgreSQL refuses it in text) and no lone
    surrogate (JSON's "\\ud800" parses, then fails to encode). The document gives the NUL rule as a pattern."""

    default_error_messages = {"text": "Holds a NUL character or a lone surrogate."}
    PATTERN = "^[^\\x00]*$"

    def __init__(self, **kwargs) -> None:
        kwargs["metadata"] = {"pattern": self.PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("text") from None
        if "\x00" in text:
            raise self.make_error("text")
        return text


class StrictBoolean(fields.Boolean):
    """JSON true or false, nothing else: marshmallow's Boolean also takes "true", "1" and 1."""

    def __init__(self, **kwargs) -> None:
        super().__init__(truthy={True}, falsy={False}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> bool:
        if value is not True and value is not False:
            raise self.make_error("invalid", input=value)
        return value


class QueryBoolean(fields.Boolean):
    """A query parameter's boolean: exactly "true" or "false", as the document's `type: boolean` is sent."""

    def __init__(self, **kwargs) -> None:
        super().__init__(truthy={"true"}, falsy={"false"}, **kwargs)


class QueryInteger(fields.Integer):
    """A query parameter's integer: ASCII digits only, where int() would also take "1_0", " 7" or "٣"."""

    DIGITS = re.compile(r"-?[0-9]{1,19}", re.ASCII)

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if not isinstance(value, str) or not self.DIGITS.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class ErrorDetailSchema(StrictSchema):
    code = fields.String(required=True, metadata={
        "description": "bad_request, unauthenticated, forbidden, not_found, method_not_allowed, conflict, "
                       "too_large, unsupported_media_type, invalid, rate_limited or internal.",
        "example": "invalid"})
    message = fields.String(required=True, metadata={"description": "For people; may change."})
    field_errors = fields.Dict(data_key="fields", metadata={
        "description": "Where the input is wrong: field names (list indexes as strings) down to a list of messages."})


class ErrorSchema(StrictSchema):
    error = fields.Nested(ErrorDetailSchema, required=True)


# status: (component name, description). Components, so each appears once in the document.
ERRORS = {
    400: ("BadRequest", "The body is not JSON, or the cursor is not one this API gave out."),
    401: ("Unauthenticated", "No bearer token, or one that is unknown or revoked."),
    403: ("Forbidden", "The token's role may not call this operation (see x-roles), or the caller sent a "
                       "session cookie instead of a token."),
    404: ("NotFound", "Nothing with that id or index."),
    405: ("MethodNotAllowed", "The path does not take this method; Allow lists the methods it takes."),
    409: ("Conflict", "The request conflicts with what is stored."),
    413: ("TooLarge", "The body is over the limit (1 MiB by default)."),
    422: ("Invalid", "The input breaks the schema: error.fields says where."),
    429: ("RateLimited", "Too many requests; try again after Retry-After seconds."),
    500: ("Internal", "Something went wrong on our side. Nothing was changed."),
}
HEADERS = {
    405: {"Allow": {"description": "The methods this path takes.", "required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 0}}},
}
EVERY_OPERATION = (405, 500)
# Paths whose errors follow another specification's shape, not the API's (the Data Rights Protocol's section 3.06).
OWN_ERRORS = ("/drp/",)


def register_components(spec) -> None:
    """The bearer scheme and one response per error status, all with the error body."""
    spec.components.security_scheme(BEARER, {
        "type": "http", "scheme": "bearer",
        "description": "An API token from `flask tokens create --role ROLE`. Each operation's x-roles lists "
                       "the roles it accepts; any other role gets 403.",
    })
    for status, (name, description) in ERRORS.items():
        response: dict = {"description": description, "content": {"application/json": {"schema": ErrorSchema}}}
        if status in HEADERS:
            response["headers"] = HEADERS[status]
        spec.components.response(name, response)


class ErrorsPlugin(BasePlugin):
    """Adds to each operation the errors its shape allows: it runs after flask-smorest's own helpers.

    It also copies a schema's OPENAPI class attribute into its definition, for the rules marshmallow
    checks in code (validates_schema) that the document can still state, such as "exactly one of".
    """

    def schema_helper(self, name, definition, **kwargs) -> dict | None:
        schema = kwargs.get("schema")
        extra = getattr(schema if isinstance(schema, type) else type(schema), "OPENAPI", None)
        return copy.deepcopy(extra) if extra else None

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        if (path or "").startswith(OWN_ERRORS):
            return  # documented whole by their feature
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            for status in sorted(self._errors(path or "", operation)):
                given = responses.pop(status, None) or responses.pop(str(status), None)
                # A view's own alt_response stands; flask-smorest's generic 422 gives way to ours.
                responses[str(status)] = ERRORS[status][0] if given in (None, "UNPROCESSABLE_ENTITY") else given

    @staticmethod
    def _errors(path: str, operation: dict) -> set[int]:
        errors = set(EVERY_OPERATION)
        if "requestBody" in operation:
            errors |= {400, 413, 422}
        if any(p.get("in") == "query" for p in operation.get("parameters", []) if isinstance(p, dict)):
            errors.add(422)
        if "{" in path:
            errors.add(404)
        if operation.get("security"):
            errors |= {401, 403}
        return errors
