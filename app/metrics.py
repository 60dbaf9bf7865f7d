"""Prometheus metrics at GET /metrics, for operator and service bearer tokens.

Everything about opt-outs, steps, receipts and the log is read from the database at scrape time, so
every web process answers the same, however many run. The one in-process figure, consent checks
served, is a prometheus_client counter: with PROMETHEUS_MULTIPROC_DIR set, every process writes it to
that folder and any process's /metrics adds them all up (prometheus_client's multiprocess mode).
"""
from __future__ import annotations

import logging
import os

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import case, func, select
from werkzeug.exceptions import HTTPException, InternalServerError

from app.auth import api_roles
from app.db import utcnow
from app.errors import CODES, error_json

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)

# Not in the default registry: each scrape builds a registry of its own (see registry_for).
CONSENT_CHECKS = Counter("ownstory_consent_checks", "Consent checks answered; each item of a batch counts once.",
                         registry=None)


def consent_checks_served(count: int) -> None:
    """Called by the consent API with the number of checks it answered."""
    CONSENT_CHECKS.inc(count)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


class DatabaseCollector:
    """The figures that live in the database, computed at scrape time with a handful of small queries."""

    def __init__(self, sessionmaker) -> None:
        self._sessionmaker = sessionmaker

    def describe(self):  # nothing is read when the collector is registered, only when scraped
        return []

    def collect(self):
        from erasure.models import (
            FAILING_STEPS,
            UNFINISHED_STEPS,
            ErasureStep,
            OptOutRequest,
            Receipt,
            RequestStatus,
        )
        from erasure.receipts import tlog as transparency_log

        now = utcnow()
        with self._sessionmaker() as session:
            overdue = case((OptOutRequest.deadline < now, 1), else_=0)
            by_status: dict[str, int] = dict.fromkeys(RequestStatus, 0)
            late = 0
            for status, total, overdue_count in session.execute(
                    select(OptOutRequest.status, func.count(), func.sum(overdue)).group_by(OptOutRequest.status)):
                by_status[status] = total
                late += (overdue_count or 0) if status != RequestStatus.COMPLETED else 0
            oldest = session.scalar(select(func.min(OptOutRequest.requested_at))
                                    .join(ErasureStep, ErasureStep.request_id == OptOutRequest.id)
                                    .where(ErasureStep.status.in_(UNFINISHED_STEPS)))
            failing = session.execute(
                select(ErasureStep.kind, ErasureStep.target, ErasureStep.status, func.count())
                .where(ErasureStep.status.in_(FAILING_STEPS))
                .group_by(ErasureStep.kind, ErasureStep.target, ErasureStep.status)).all()
            receipts = session.scalar(select(func.count()).select_from(Receipt)) or 0
            leaves = transparency_log.size(session)
            checkpoint = transparency_log.latest_checkpoint(session)
            signed = checkpoint.tree_size if checkpoint is not None else 0

        requests = GaugeMetricFamily("ownstory_optout_requests", "Opt-out requests by status.", labels=["status"])
        for status, total in by_status.items():
            requests.add_metric([status], total)
        yield requests
        yield GaugeMetricFamily("ownstory_optout_requests_overdue",
                                "Opt-out requests not completed by their deadline.", value=late)
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "ownstory_oldest_unfinished_step_age_seconds",
            "Seconds since the oldest opt-out with a step not yet done (pending, running, retrying or "
            "needs attention) was requested; 0 when every step is done.", value=age)
        failures = GaugeMetricFamily(
            "ownstory_erasure_step_failures",
            "Steps failing now (retrying or needing attention), by kind, target (the network key for "
            "revoke steps, store/category for purge steps, ownstory for forget steps) and status.",
            labels=["kind", "target", "status"])
        for kind, target, status, total in failing:
            failures.add_metric([kind, target, status], total)
        yield failures
        yield CounterMetricFamily("ownstory_receipts_issued", "Deletion receipts issued.", value=receipts)
        yield GaugeMetricFamily("ownstory_log_size", "Leaves in the transparency log.", value=leaves)
        yield GaugeMetricFamily("ownstory_log_signed_tree_size", "The tree size of the latest signed checkpoint.",
                                value=signed)


def registry_for(sessionmaker) -> CollectorRegistry:
    """The database's figures and the consent-check counter: this process's, or every process's."""
    registry = CollectorRegistry()
    folder = multiprocess_dir()
    if folder:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=folder)
    else:
        registry.register(CONSENT_CHECKS)
    registry.register(DatabaseCollector(sessionmaker))
    return registry


@bp.get("/metrics")
@api_roles("operator", "service")
def metrics():
    """Prometheus text exposition (format 0.0.4)."""
    body = generate_latest(registry_for(current_app.extensions["ownstory_db"]["sessionmaker"]))
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
