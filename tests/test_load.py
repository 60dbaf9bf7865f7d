"""A busy day on `make run`'s settings: one process on SQLite, the inline worker, Demo Social at /demo, and for
20 seconds 8 people signing in and out, 8 saving consents and 4 leaving, all at once. Nothing answers with a
server error, and every opt-out completes, once.

Loopback only, and bounded: each client waits at most a minute for an answer, and the opt-outs at most two
minutes to complete. Rate limits are off here, as in the other live-server tests: every client comes from
127.0.0.1, so the per-address limits would answer most of them 429 (tests/app/test_accounts.py tests those).
"""
from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import func, select

from app.settings import ROOT
from erasure.models import OptOutRequest, Receipt, RequestStatus
from tests.helpers_browser import free_port
from tests.helpers_crowd import (
    Person,
    Tally,
    connect_demo,
    connected,
    consent_boxes,
    crowd,
    leaving,
    saving_consents,
    signing_in,
)
from tests.helpers_servers import LiveServer

pytestmark = pytest.mark.slow

SECONDS = 20
SIGNING_IN, SAVING, LEAVING = 8, 8, 4
COMPLETE_WITHIN = 120  # seconds after the crowd has gone


@pytest.fixture
def running(make_app, tmp_path):
    """The app as `make run` serves it, with its inline worker, on a loopback port: (app, base URL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app({"DEMO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo_social.db'}",
                    "RETENTION_SWEEP_SECONDS": 5},  # so that sweeps run within the 20 seconds too
                   demo="1", inline_worker="1", base_url=base, networks=str(ROOT / "config" / "networks.toml"))
    server = LiveServer(app, port=port).start()
    yield app, base
    server.stop()
    scheduler = app.extensions.get("ownstory_inline_worker")
    if scheduler is not None:
        scheduler.shutdown(wait=True)


def test_a_busy_day_on_sqlite(running, make_person, sessions, caplog):
    app, base = running
    caplog.set_level(logging.WARNING)
    tally = Tally()
    boxes = consent_boxes(app)
    status_paths: list[str] = []
    jobs = [signing_in(Person(base, make_person().email), tally) for _ in range(SIGNING_IN)]
    for i in range(SAVING):
        saver = make_person()
        connected(app, saver, str(6000 + i))
        jobs.append(saving_consents(Person(base, saver.email), tally, boxes))
    for i in range(LEAVING):
        leaver = Person(base, make_person().email)
        assert leaver.sign_in().status_code == 302
        connect_demo(leaver, str(1001 + i))
        jobs.append(leaving(leaver, tally, after=2.0 + 4 * i, status_paths=status_paths))

    crowd(jobs, SECONDS)

    assert tally.server_errors() == []
    refused = {key: n for key, n in tally.statuses.items() if key[1] >= 400}
    assert refused == {}, refused
    assert tally.done("sign in", 302) >= SIGNING_IN and tally.done("save consents", 302) >= SAVING
    assert len(status_paths) == LEAVING

    deadline = time.monotonic() + COMPLETE_WITHIN
    while True:
        with sessions() as db:
            statuses = list(db.scalars(select(OptOutRequest.status)))
        if statuses.count(RequestStatus.COMPLETED) == LEAVING or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert statuses == [RequestStatus.COMPLETED] * LEAVING
    with sessions() as db:
        per_request = dict(db.execute(select(Receipt.request_id, func.count()).group_by(Receipt.request_id)).all())
    assert sorted(per_request.values()) == [1] * LEAVING  # one receipt each: each opt-out completed once
    # Nothing failed in the background either: the worker's steps and the retention sweeps went through.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
