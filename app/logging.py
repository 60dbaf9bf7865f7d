"""Structured logs: one JSON object per line, a request id on every request, and redaction of secrets.

Code logs ids, never tokens, emails or the status link's `k`; the redaction here is defence in
depth for text that comes from elsewhere (libraries' messages, tracebacks, a URL with its query).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from typing import ClassVar, TextIO

from flask import Flask, Response, g, has_request_context, request

ACCESS = logging.getLogger("ownstory.access")
ACCESS_LOGGERS = ("werkzeug", "ownstory.access")  # the development server's access lines, and ours
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
REQUEST_FIELDS = ("request_id", "method", "path", "status", "duration_ms")
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")  # the development server colours its lines

# What must never reach a log line, in the order it is masked.
_MASKED_NAMES = (r"k|access_token|refresh_token|id_token|token|code_verifier|client_secret|client_assertion|"
                 r"password|secret|secret_key|salt|pepper|api_key")
_REDACTIONS = (
    # A query string after anything URL-like: status links carry k, OAuth callbacks a code and state.
    (re.compile(r"(?<=[\w/.%~-])\?[^\s\"'<>`]*=[^\s\"'<>`]*"), "?[query dropped]"),
    # Credentials in headers, and this service's API tokens wherever they appear.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"\bows_[A-Za-z0-9_-]+"), "ows_[redacted]"),
    # name=value and "name": "value" pairs whose name says secret.
    (re.compile(rf"(?i)(?<![\w-])({_MASKED_NAMES})=[^\s&\"',;]+"), r"\1=[redacted]"),
    (re.compile(rf"(?i)([\"']({_MASKED_NAMES})[\"']\s*:\s*)[\"'][^\"']*[\"']"), r'\1"[redacted]"'),
    # Email addresses.
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), "[email]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactFilter(logging.Filter):
    """Rewrites each record's message (and traceback) with secrets masked, before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what can be kept
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None  # formatted once, redacted; the raw one would be formatted again
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactMatches(logging.Filter):
    """Masks what a subclass's PATTERN matches, keeping its first group, in a record's message, arguments
    and `path` (the access line's field): a feature names what its URLs must not show in access logs.

    Installed on the loggers themselves, it works whatever prints their records (the development
    server, a test, the JSON handler), where RedactFilter guards the JSON handler only.
    """

    PATTERN: ClassVar[re.Pattern[str]]

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._mask(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self._mask(record.msg)
        if isinstance(getattr(record, "path", None), str):
            record.path = self._mask(record.path)  # type: ignore[attr-defined]
        return True

    def _mask(self, text: str) -> str:
        return self.PATTERN.sub(r"\1[redacted]", text)

    @classmethod
    def install(cls, loggers: tuple[str, ...] = ACCESS_LOGGERS) -> None:
        """Add one such filter to each logger, however many apps are built."""
        for name in loggers:
            logger = logging.getLogger(name)
            if not any(isinstance(f, cls) for f in logger.filters):
                logger.addFilter(cls())


class RequestIdFilter(logging.Filter):
    """Stamps records made while a request is served with its request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            record.request_id = request_id()
        return True


class JsonFormatter(logging.Formatter):
    """time, level, logger and message; request fields when present; the traceback as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": ANSI_STYLE.sub("", record.getMessage()),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class _OwnstoryHandler(logging.StreamHandler):
    """Marks the handler configure() installed, so that building the app twice does not log twice."""


def configure(level: int | str = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """JSON lines on stderr (or `stream`) for every logger, through the redaction filter."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OwnstoryHandler)]:
        root.removeHandler(old)
    handler = _OwnstoryHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic names each of its plugins as it loads them, on every start: nothing an operator acts on.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return handler


# --- requests ----------------------------------------------------------------------------------

def request_id() -> str:
    """This request's id: the caller's X-Request-ID when it is a safe token, else one of our own."""
    if "request_id" not in g:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    return g.request_id


def init_app(app: Flask) -> None:
    """A request id and an access line for every request, and JSON logging.

    JSON_LOGS=True configures it always, False never. Left unset, as logging.basicConfig would: not when
    testing or debugging, nor when the program running the app already configured logging (the bench).
    """
    wanted = app.config.get("JSON_LOGS")
    if wanted is None:
        others = [h for h in logging.getLogger().handlers if not isinstance(h, _OwnstoryHandler)]
        wanted = not app.debug and not app.testing and not others
    if wanted:
        configure(app.config.get("LOG_LEVEL", logging.INFO))
    app.before_request(_start)
    app.after_request(_access_line)


def _start() -> None:
    g.request_started = time.perf_counter()
    request_id()


def _access_line(response: Response) -> Response:
    response.headers["X-Request-ID"] = request_id()
    started = g.get("request_started")
    duration = round((time.perf_counter() - started) * 1000, 2) if started is not None else None
    # request.path never carries the query string: status links hold the capability k there.
    ACCESS.info("%s %s %s", request.method, request.path, response.status_code, extra={
        "method": request.method, "path": request.path, "status": response.status_code, "duration_ms": duration})
    return response
