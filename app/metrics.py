"""Prometheus metrics at GET /metrics, for operator and service bearer tokens.

The features' figures (erasure's opt-outs, steps, receipts and log) are read from the database at scrape
time by the collectors each feature registers (register_collector), so every web process answers the
same, however many run. The one in-process figure, consent checks served, is a prometheus_client
counter: with PROMETHEUS_MULTIPROC_DIR set, every process writes it to that folder and any process's
/metrics adds them all up (prometheus_client's multiprocess mode).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, InternalServerError

from app.auth import api_roles
from app.errors import CODES, error_json

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)

COLLECTORS = "ownstory_metrics_collectors"  # app.extensions' list of the features' collect functions
Collect = Callable[[Session], Iterable[Metric]]

# Not in the default registry: each scrape builds a registry of its own (see registry_for).
CONSENT_CHECKS = Counter("ownstory_consent_checks", "Consent checks answered; each item of a batch counts once.",
                         registry=None)


def consent_checks_served(count: int) -> None:
    """Called by the consent API with the number of checks it answered."""
    CONSENT_CHECKS.inc(count)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


class DatabaseCollector:
    """One feature's figures, computed at scrape time with a handful of small queries in a session of their own."""

    def __init__(self, sessionmaker, collect: Collect) -> None:
        self._sessionmaker = sessionmaker
        self._collect = collect

    def describe(self):  # nothing is read when the collector is registered, only when scraped
        return []

    def collect(self):
        with self._sessionmaker() as session:
            families = list(self._collect(session))
        yield from families


def register_collector(app: Flask, collect: Collect) -> None:
    """A feature's figures: `collect(session)` gives its metric families, read from the database at each scrape."""
    app.extensions.setdefault(COLLECTORS, []).append(collect)


def registry_for(sessionmaker, collectors: Iterable[Collect] = ()) -> CollectorRegistry:
    """The features' figures from the database and the consent-check counter: this process's, or every process's."""
    registry = CollectorRegistry()
    folder = multiprocess_dir()
    if folder:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=folder)
    else:
        registry.register(CONSENT_CHECKS)
    for collect in collectors:
        registry.register(DatabaseCollector(sessionmaker, collect))
    return registry


@bp.get("/metrics")
@api_roles("operator", "service")
def metrics():
    """Prometheus text exposition (format 0.0.4)."""
    registry = registry_for(current_app.extensions["ownstory_db"]["sessionmaker"],
                            current_app.extensions.get(COLLECTORS, ()))
    body = generate_latest(registry)
    return Response(body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4, "Cache-Control": "no-store"})


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """JSON errors, as on the API: a scraper is a program."""
    status = exc.code or 500
    headers = {k: v for k, v in exc.get_headers() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
    code = getattr(exc, "error_code", None) or CODES.get(status, "error")
    return error_json(status, code, exc.description or "Something is wrong with the request.", headers=headers)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("metrics could not be collected")
    return _http_error(InternalServerError("The metrics could not be collected."))
