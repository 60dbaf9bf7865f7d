"""What the configured app gives the agents' service, and the scheduler's job that keeps agents told."""
from __future__ import annotations

import logging

import requests
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from app.db import utcnow, writing
from erasure.agents import callbacks, service
from erasure.context import context_from_app

log = logging.getLogger(__name__)


def desk_from_app(app: Flask) -> service.Desk:
    return service.Desk(ctx=context_from_app(app), business_id=app.config["DRP_BUSINESS_ID"],
                        link_key=app.config["SECRET_KEY"].encode())


def tick(app: Flask, sessions: sessionmaker[Session], http: requests.Session | None = None) -> int:
    """Bring open requests' statuses up to date (a deletion's receipt, a verification that ran out), then send
    the status callbacks that are due. Runs beside the worker's steps, never in their way; returns how many
    callbacks reached their agent."""
    try:
        desk, now = desk_from_app(app), utcnow()
        with sessions() as session, writing(session):
            service.refresh_open(desk, session, now)
        base = float(app.config.get("DRP_CALLBACK_RETRY_SECONDS", 5))
        with requests.Session() if http is None else http as client:
            return callbacks.send_due(sessions, client, now, lambda request: service.capability_links(desk, request),
                                      base=base)
    except Exception:
        # A database briefly away must not stop the scheduler: the next tick tries again.
        log.exception("drp tick failed")
        return 0
