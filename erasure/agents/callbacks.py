"""Status callbacks (DRP 2.03): each status change is a row, POSTed to the agent's status_callback by the worker's
scheduler, retried with backoff, and never in the way of the work itself.

A callback is claimed by moving its not_before past a lease with a conditional UPDATE, so two workers never
send the same row at once; once a newer status of the same request reaches the agent, older ones still
waiting are dropped: the agent needs the latest status, not the history.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, cast

import requests
from sqlalchemy import CursorResult, and_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import write_lock
from erasure.agents.models import AgentRequest, StatusCallback

log = logging.getLogger(__name__)

TIMEOUT = (3, 5)  # (connect, read) seconds
LEASE = dt.timedelta(seconds=30)
MAX_ATTEMPTS = 12  # about two days of backoff, then the agent asks with GET instead
BATCH = 20


def queue(session: Session, request_id: str, body: dict, now: dt.datetime) -> None:
    """Queue a status change to send. The caller commits, with the change itself."""
    session.add(StatusCallback(request_id=request_id, body=body, state="pending", attempts=0, not_before=now,
                               created_at=now))


def backoff(attempts: int, base: float) -> dt.timedelta:
    return dt.timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 6 * 3600))


Links = Callable[[AgentRequest], dict]  # the capability links a stored status leaves out, added when sending


def due_at(now):
    """The callbacks to send at `now` (a value, or a bound parameter)."""
    return and_(StatusCallback.state == "pending", StatusCallback.not_before <= now)


def send_due(sessions: sessionmaker[Session], http: requests.Session, now: dt.datetime, links: Links,
             base: float = 5.0) -> int:
    """Send the callbacks that are due; returns how many reached their agent."""
    with sessions() as session:
        due = list(session.execute(
            select(StatusCallback.id, StatusCallback.not_before).where(due_at(now))
            .order_by(StatusCallback.id).limit(BATCH)))
    sent = 0
    for callback_id, not_before in due:
        sent += _send_one(sessions, http, callback_id, not_before, now, links, base)
    return sent


def _send_one(sessions: sessionmaker[Session], http: requests.Session, callback_id: int, not_before: dt.datetime,
              now: dt.datetime, links: Links, base: float) -> int:
    with sessions() as session:
        claimed = cast(CursorResult[Any], session.execute(
            update(StatusCallback)
            .where(StatusCallback.id == callback_id, StatusCallback.state == "pending",
                   StatusCallback.not_before == not_before)
            .values(not_before=now + LEASE, attempts=StatusCallback.attempts + 1)
            .execution_options(synchronize_session=False))).rowcount
        session.commit()
        if claimed != 1:
            return 0  # another worker has it
        callback = session.get_one(StatusCallback, callback_id)
        request = session.get_one(AgentRequest, callback.request_id)
        body, attempts, request_id, url = dict(callback.body), callback.attempts, request.id, request.status_callback
        if body.get("status") == "fulfilled":
            body.update(links(request))
        session.rollback()  # no transaction stays open while the agent answers
    error = _post(http, url, body) if url else None
    with sessions() as session:
        write_lock(session)  # it reads the row, then writes: on SQLite, a worker's commit between would fail it
        callback = session.get_one(StatusCallback, callback_id)
        if error is None:
            callback.state, callback.last_error = "sent", None
            session.execute(update(StatusCallback).where(
                StatusCallback.request_id == request_id, StatusCallback.state == "pending",
                StatusCallback.id < callback_id).values(state="superseded")
                .execution_options(synchronize_session=False))
        elif attempts >= MAX_ATTEMPTS:
            callback.state, callback.last_error = "failed", error
            log.warning("drp request %s: its status callback failed %d times; given up", request_id, attempts)
        else:
            callback.not_before, callback.last_error = now + backoff(attempts, base), error
            log.info("drp request %s: status callback failed (%s); retried later", request_id, error)
        session.commit()
    return int(error is None)


def _post(http: requests.Session, url: str, body: dict) -> str | None:
    """None when the agent answered 2xx, else a short reason fit for a log line (never the URL)."""
    try:
        answer = http.post(url, json=body, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        return type(exc).__name__
    return None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
