"""GET /metrics: who may scrape it, and that its figures match the database and the consent API."""
import datetime as dt
import os
import sqlite3
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from app.db import make_engine, utcnow
from app.settings import ROOT
from consent.suppression import Identity
from erasure.context import context_from_app
from erasure.engine import slots as shared_slots
from erasure.models import ErasureStep, OptOutRequest
from erasure.optout import service
from erasure.receipts import issue
from erasure.stores.coverage import Watch
from tests.conftest import db_session, takes_at_once


def scrape(client, token: str) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


@pytest.mark.parametrize("role, status", [("anonymous", 401), ("person", 403), ("auditor", 403),
                                          ("operator", 200), ("service", 200)])
def test_only_operator_and_service_tokens_may_scrape(app, api_token, make_person, login, role, status):
    client = app.test_client()
    headers = {}
    if role == "person":
        login(client, make_person())
    elif role != "anonymous":
        headers["Authorization"] = f"Bearer {api_token(role)}"
    response = client.get("/metrics", headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    if status != 200:
        assert response.json["error"]["code"] == ("unauthenticated" if status == 401 else "forbidden")
    assert "Set-Cookie" not in response.headers


def test_a_signed_in_operator_still_needs_a_token(app, make_person, login):
    client = app.test_client()
    login(client, make_person(role="operator"))
    assert client.get("/metrics").status_code == 403


def submit(app, account: str) -> str:
    with db_session(app) as db:
        submitted = service.submit(db, context_from_app(app), user=None, grants=[], scope="all", now=utcnow(),
                                   given=[Identity("account", account, "demo")], source="service")
        db.commit()
        return submitted.request.id


def test_the_figures_come_from_the_database(app, client, api_token, sessions):
    token = api_token("operator")
    empty = scrape(client, token)
    assert empty[("ownstory_optout_requests", (("status", "received"),))] == 0
    assert empty[("ownstory_oldest_unfinished_step_age_seconds", ())] == 0
    assert empty[("ownstory_receipts_issued_total", ())] == 0

    assert empty[("ownstory_optout_requests_due_soon", (("within", "1d"),))] == 0
    stuck, late, done, week = submit(app, "9001"), submit(app, "9002"), submit(app, "9003"), submit(app, "9004")
    long_ago = utcnow() - dt.timedelta(days=40)
    with sessions() as db:
        db.execute(update(OptOutRequest).where(OptOutRequest.id == stuck).values(
            status="needs_attention", deadline=utcnow() + dt.timedelta(hours=12)))
        db.execute(update(OptOutRequest).where(OptOutRequest.id == week).values(
            deadline=utcnow() + dt.timedelta(days=3)))
        first, second = db.scalars(select(ErasureStep).where(ErasureStep.request_id == stuck)
                                   .order_by(ErasureStep.position).limit(2)).all()
        first.status, second.status = "needs_attention", "retrying"
        db.execute(update(OptOutRequest).where(OptOutRequest.id == late).values(
            status="in_progress", requested_at=long_ago, deadline=long_ago + dt.timedelta(days=30)))
        db.execute(update(OptOutRequest).where(OptOutRequest.id == done).values(status="completed"))
        db.execute(update(ErasureStep).where(ErasureStep.request_id == done).values(status="done"))
        ctx = context_from_app(app)
        issue.issue_receipt(db, ctx, db.get(OptOutRequest, done), ctx.log_origin, utcnow())
        failing = {(first.kind, first.target, "needs_attention"), (second.kind, second.target, "retrying")}
        db.commit()

    figures = scrape(client, token)
    by_status = {status: figures[("ownstory_optout_requests", (("status", status),))]
                 for status in ("received", "in_progress", "completed", "needs_attention")}
    assert by_status == {"received": 1, "in_progress": 1, "completed": 1, "needs_attention": 1}
    assert figures[("ownstory_optout_requests_overdue", ())] == 1
    # Due within a day: the stuck one; within a week, the one due in 3 days too. The overdue one is counted as
    # overdue, and the completed one not at all.
    assert figures[("ownstory_optout_requests_due_soon", (("within", "1d"),))] == 1
    assert figures[("ownstory_optout_requests_due_soon", (("within", "7d"),))] == 2
    assert 40 * 86400 - 60 < figures[("ownstory_oldest_unfinished_step_age_seconds", ())] < 40 * 86400 + 60
    failures = {(dict(labels)["kind"], dict(labels)["target"], dict(labels)["status"]): value
                for (name, labels), value in figures.items() if name == "ownstory_erasure_step_failures"}
    assert failures == dict.fromkeys(failing, 1)
    assert figures[("ownstory_receipts_issued_total", ())] == 1
    assert figures[("ownstory_log_size", ())] == 1
    assert figures[("ownstory_log_signed_tree_size", ())] == 1


@pytest.fixture
def demo_takes_two(config_files):
    """Demo Social's catalogue entry takes 2 revocation calls at once: before the app reads it."""
    takes_at_once(config_files["networks"], "[networks.demo.revocation]", 2)


def test_what_each_network_and_store_has_still_to_do_and_its_calls_at_once(demo_takes_two, app, client, api_token,
                                                                          sessions, database_url):
    token = api_token("operator")
    first, second = submit(app, "9101"), submit(app, "9102")
    with sessions() as db:
        db.execute(update(ErasureStep).where(ErasureStep.request_id == first, ErasureStep.kind == "purge")
                   .values(status="running"))
        db.execute(update(ErasureStep).where(ErasureStep.request_id == second, ErasureStep.kind == "purge")
                   .values(not_before=utcnow() - dt.timedelta(minutes=10)))
        db.commit()
    engine = make_engine(database_url)
    slot = shared_slots.for_engine(engine).take("revoke:demo", 2)  # a worker in a call at Demo Social
    try:
        figures = scrape(client, token)
    finally:
        assert slot is not None
        slot.release()
        engine.dispose()

    def unfinished(kind: str, target: str, state: str) -> float:
        return figures[("ownstory_erasure_steps_unfinished", (("kind", kind), ("state", state), ("target", target)))]

    assert (unfinished("purge", "platform", "waiting"), unfinished("purge", "platform", "under_way")) == (1, 1)
    assert (unfinished("revoke", "demo", "waiting"), unfinished("revoke", "demo", "under_way")) == (0, 0)
    longest = {dict(labels)["target"]: value for (name, labels), value in figures.items()
               if name == "ownstory_erasure_longest_wait_seconds"}
    assert 600 <= longest["platform"] < 660 and longest["demo"] == 0  # the erasure due 10 minutes ago; none at demo
    assert figures[("ownstory_max_in_flight", (("kind", "revoke"), ("target", "demo")))] == 2
    assert ("ownstory_max_in_flight", (("kind", "purge"), ("target", "platform"))) not in figures  # no limit
    assert figures[("ownstory_calls_in_flight", (("kind", "revoke"), ("target", "demo")))] == 1
    assert scrape(client, token)[("ownstory_calls_in_flight", (("kind", "revoke"), ("target", "demo")))] == 0


def test_the_tables_and_columns_the_data_map_and_a_store_disagree_on(app, client, api_token, platform_url):
    token = api_token("operator")
    agreed = scrape(client, token)
    assert agreed[("ownstory_datamap_tables", (("state", "unmapped"), ("store", "platform")))] == 0
    assert agreed[("ownstory_datamap_tables", (("state", "missing"), ("store", "platform")))] == 0
    assert agreed[("ownstory_datamap_columns", (("state", "unindexed"), ("store", "platform")))] == 0
    with sqlite3.connect(urlsplit(platform_url).path[1:]) as conn:
        conn.execute("CREATE TABLE direct_messages (sender_id TEXT)")
        conn.execute("DROP TABLE scores")
        conn.execute("DROP INDEX ix_posts_author_id")
    app.extensions["datamap_coverage"] = Watch(app.extensions["datamap"])  # looked at again now, not in 5 minutes
    apart = scrape(client, token)
    assert apart[("ownstory_datamap_tables", (("state", "unmapped"), ("store", "platform")))] == 1
    assert apart[("ownstory_datamap_tables", (("state", "missing"), ("store", "platform")))] == 1
    assert apart[("ownstory_datamap_columns", (("state", "missing"), ("store", "platform")))] == 0
    assert apart[("ownstory_datamap_columns", (("state", "unindexed"), ("store", "platform")))] == 1


def test_consent_checks_served_are_counted(app, client, api_token):
    service_token = api_token("service")
    before = scrape(client, service_token).get(("ownstory_consent_checks_total", ()), 0)
    checks = [{"network": "demo", "account": str(1000 + n), "purpose": "scoring"} for n in range(3)]
    answered = client.post("/api/v1/consent/check", json={"checks": checks},
                           headers={"Authorization": f"Bearer {service_token}"})
    assert answered.status_code == 200
    assert scrape(client, service_token)[("ownstory_consent_checks_total", ())] == before + 3


def test_multiprocess_mode_adds_up_every_process(app, client, api_token, tmp_path, monkeypatch):
    """With PROMETHEUS_MULTIPROC_DIR set, each process writes its counts there and any one answers the sum."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    for served in (2, 5):
        subprocess.run([sys.executable, "-c", f"from app.metrics import consent_checks_served as c; c({served})"],
                       cwd=ROOT, env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    figures = scrape(client, api_token("operator"))
    assert figures[("ownstory_consent_checks_total", ())] == 7
    assert ("ownstory_optout_requests", (("status", "received"),)) in figures  # the database's figures too


def test_a_feature_adds_its_figures_with_a_collector(app, client, api_token):
    from prometheus_client.metrics_core import GaugeMetricFamily

    from app.metrics import register_collector
    from app.models import User

    def collect(session):
        yield GaugeMetricFamily("ownstory_test_users", "People with an account.",
                                value=session.scalar(select(func.count()).select_from(User)))

    register_collector(app, collect)
    figures = scrape(client, api_token("operator"))
    assert figures[("ownstory_test_users", ())] == 0
    assert ("ownstory_receipts_issued_total", ()) in figures  # erasure's, registered by the factory
