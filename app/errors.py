"""Errors: JSON under /api/v1 in the contract's shape, friendly pages everywhere else."""
from __future__ import annotations

import logging

from flask import Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from app.db import end_request_transaction

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
    422: "invalid", 429: "rate_limited", 500: "internal", 503: "unavailable",
}


class ApiError(HTTPException):
    """An error with a code of our own, raised by API views and services' callers."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None) -> None:
        super().__init__(description=message)
        self.code = status
        self.error_code = code
        self.fields = fields


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/.well-known/")


def error_json(status: int, code: str, message: str, fields: dict | None = None,
               headers: dict | None = None) -> Response:
    body: dict = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    response = jsonify({"error": body})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _parser_messages(exc: HTTPException) -> dict | list:
    """webargs' messages, without the location ("json", "query") when there is one: it adds nothing."""
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or {}
    if len(messages) == 1:
        return next(iter(messages.values()))
    return messages


def _message(exc: HTTPException) -> str:
    messages = _parser_messages(exc)
    if isinstance(messages, list):  # about the body as a whole: "Invalid JSON body."
        return " ".join(str(m) for m in messages)
    if messages:
        return "The request is not valid; see fields."
    return exc.description or "Something is wrong with the request."


def _fields(exc: HTTPException) -> dict | None:
    explicit = getattr(exc, "fields", None)
    if explicit:
        return explicit
    messages = _parser_messages(exc)
    return messages if isinstance(messages, dict) and messages else None


def handle_http_exception(exc: HTTPException):
    # Nothing a failed request left uncommitted is kept; and the page below reads the signed-in user,
    # which a session whose flush failed could not do until it is rolled back.
    end_request_transaction()
    status = exc.code or 500
    headers = dict(exc.get_headers()) if hasattr(exc, "get_headers") else {}
    kept = {k: v for k, v in headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
    if wants_json():
        code = getattr(exc, "error_code", None) or CODES.get(status, "error")
        return error_json(status, code, _message(exc), _fields(exc), kept)
    page = render_template("error.html", status=status, title=exc.name, message=exc.description)
    return page, status, kept


def handle_unexpected(exc: Exception):
    # The stack trace goes to the log, never to the client.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_exception(InternalServerError("Something went wrong on our side. Nothing was changed."))

