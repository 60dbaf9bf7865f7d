"""An opt-out whose data lives in a service of the platform's own (the shipped map's billing store), run by the
worker against Demo Billing on loopback: counted on My data, confirmed deleted on the pages and the receipt,
each row counted once through a 500 or a slow answer, and never done while the service does not confirm."""
from __future__ import annotations

import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from app.db import make_engine, utcnow
from app.settings import ROOT
from erasure.context import context_from_app
from erasure.engine import slots as shared_slots
from erasure.engine.worker import QUICK_RETRIES, Worker
from erasure.models import ErasureStep, OptOutRequest, Receipt
from erasure.optout import progress, service, wording
from erasure.receipts import issue
from erasure.stores.kinds import registered_kinds
from tests.conftest import BILLING_STORE, takes_at_once
from tests.erasure.engine.helpers_processes import wait_for
from tests.erasure.helpers_optout import joined_person, submit_optout
from tests.erasure.stores.helpers_billing import billing_app
from tests.helpers_servers import serve

RETRY_AFTER = 30  # seconds an overwhelmed service asks us to wait


@pytest.fixture
def billing(config_files, tmp_path, monkeypatch):
    """Demo Billing on loopback, and the shipped map's billing store pointed at it: the service's state."""
    if "http" not in registered_kinds():
        if os.environ.get("CI"):
            pytest.fail("the http store kind is not registered: run `.venv/bin/pip install --no-deps -e .`")
        pytest.skip("the http store kind is not registered in this venv (`.venv/bin/pip install --no-deps -e .`)")
    _tables, found, service_block = (ROOT / "config" / "datamap.toml").read_text().partition(BILLING_STORE)
    with config_files["datamap"].open("a") as datamap:
        datamap.write(found + service_block)
    with serve(billing_app(str(tmp_path / "billing.db"), "http://127.0.0.1:9/not-yet")) as service:
        monkeypatch.setenv("BILLING_ERASE_URL", service.url)
        yield service.app.extensions["billing"]


@pytest.fixture
def app(make_app, billing):
    """The app, with the billing store, served on loopback: the service checks its calls against its JWKS."""
    built = make_app()
    with serve(built) as ownstory:
        billing.keys.jwks_url = f"{ownstory.url}/.well-known/jwks.json"
        yield built


def left(app, client, make_person, login, csrf_post, billing, invoices: int = 2) -> tuple[str, str]:
    """A person with invoices at the billing service who joined and left everything: (request id, status path)."""
    person = joined_person(client, make_person, login, csrf_post)
    billing.add_invoices(f"email:{person.email}", invoices)
    billing.add_invoices("email:someone-else@example.org", 3)
    assert "invoices" in client.get("/me").get_data(as_text=True)
    status_path = submit_optout(client, csrf_post, "all")
    return status_path.split("?")[0].rsplit("/", 1)[1], status_path


def drain_until(worker, app, request_id: str, done, seconds: float = 20.0) -> list[ErasureStep]:
    deadline = time.monotonic() + seconds
    while True:
        worker.drain()
        steps = steps_of(app, request_id)
        if done(steps):
            return steps
        if time.monotonic() > deadline:
            raise AssertionError([(s.kind, s.target, s.status, s.last_error) for s in steps])
        time.sleep(0.05)


def steps_of(app, request_id: str) -> list[ErasureStep]:
    with app.extensions["ownstory_db"]["sessionmaker"]() as db:
        return list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)))


def billing_step(steps: list[ErasureStep]) -> ErasureStep:
    """The purge at the billing service (one step purges the store; verify asks again once access is revoked)."""
    [step] = [s for s in steps if s.target == "billing"]
    return step


def completed(steps: list[ErasureStep]) -> bool:
    return all(s.status == "done" for s in steps)


def test_the_service_confirms_and_the_receipt_and_pages_say_so(app, billing, client, make_person, login, csrf_post,
                                                                worker):
    request_id, status_path = left(app, client, make_person, login, csrf_post, billing)
    steps = drain_until(worker, app, request_id, completed)
    assert billing_step(steps).result["rows"] == 2
    assert billing.held("email:someone-else@example.org") == 3

    status = client.get(status_path).get_data(as_text=True)
    assert "Have the Billing service delete your invoices" in status
    assert "Billing service confirmed 2 invoices deleted" in status
    with app.extensions["ownstory_db"]["sessionmaker"]() as db:
        request = db.get(OptOutRequest, request_id)
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
        assert request.status == "completed"
        claims = issue.claims_of(receipt)
    assert {"store": "billing", "category": "invoices", "rows": 2} in claims["purged"]
    page = client.get(f"/receipts/{receipt.id}").get_data(as_text=True)
    assert "Billing service confirmed 2 invoices deleted." in page


@pytest.mark.parametrize("fault", ["500 then 200", "202 then done", "lost answer"])
def test_a_service_that_stumbles_is_retried_and_each_invoice_counted_once(fault, app, billing, client, make_person,
                                                                           login, csrf_post, worker):
    store = app.extensions["datamap"].store("billing")
    store.service.poll_for = 3.0
    if fault == "500 then 200":
        billing.faults.set("erase", status=500, times=1)
    elif fault == "202 then done":
        billing.polls_before_done = 2
    else:
        # Every call waits 1.5 s at most, and the healthy ones after the lost answer must not time out
        # too, even on a busy machine: that would be a third erasure asked for.
        store.service.timeout = (2, 1.5)
        billing.faults.set("erase", delay=4.0, times=1)  # it deletes once Ownstory stopped waiting
    request_id, _status = left(app, client, make_person, login, csrf_post, billing, invoices=4)
    steps = drain_until(worker, app, request_id, completed)
    assert billing_step(steps).result["rows"] == 4
    verify = next(s for s in steps if s.kind == "verify")
    assert verify.result["late_rows"] == []  # looked again once access was revoked: nothing new, nothing twice
    # ...and, the service counting none left, no second erasure was asked for
    assert billing.calls["erase"] == (2 if fault != "202 then done" else 1)


def test_a_purge_retried_while_the_service_still_works_follows_its_job_and_starts_no_second(
        app, billing, client, make_person, login, csrf_post, worker):
    app.extensions["datamap"].store("billing").service.poll_for = 0.3  # two polls an attempt
    billing.polls_before_done = 5  # done at the third attempt's polls
    request_id, _status = left(app, client, make_person, login, csrf_post, billing, invoices=4)
    steps = drain_until(worker, app, request_id, completed)
    step = billing_step(steps)
    # Polls outlast an attempt (how many attempts it takes depends on the machine's pace)...
    assert step.attempts >= 2 and step.result["rows"] == 4
    assert billing.calls["erase"] == step.attempts  # ...and each attempt asked after the same erasure...
    with billing.db() as conn:
        assert conn.execute("SELECT count(*) FROM erasures").fetchone()[0] == 1  # ...and the service ran one job
    assert billing.held("email:someone-else@example.org") == 3


def test_invoices_that_came_in_before_the_revocation_went_through_are_erased_by_one_job_followed_across_attempts(
        app, billing, client, make_person, login, csrf_post, worker, demo_state):
    person = joined_person(client, make_person, login, csrf_post)
    billing.add_invoices(f"email:{person.email}", 2)
    billing.add_invoices("email:someone-else@example.org", 3)
    demo_state.faults.set("revoke", status=503)  # Demo Social does not take the revocation yet
    status_path = submit_optout(client, csrf_post, "all")
    request_id = status_path.split("?")[0].rsplit("/", 1)[1]
    drain_until(worker, app, request_id, lambda steps: billing_step(steps).status == "done")
    billing.add_invoices(f"email:{person.email}", 3)  # the platform bills through the token, still live

    app.extensions["datamap"].store("billing").service.poll_for = 0.3  # two polls an attempt
    billing.polls_before_done = 5  # verify's erasure is done at its third attempt's polls
    demo_state.faults.clear("revoke")
    steps = drain_until(worker, app, request_id, completed)

    verify = next(s for s in steps if s.kind == "verify")
    assert billing_step(steps).result["rows"] == 2
    assert verify.result["late_rows"] == [{"store": "billing", "category": "invoices", "rows": 3}]
    # Verify's polls outlast an attempt, and each attempt asked after the same erasure: the service ran one
    # job for the purge and one for verify, never a second one for a retried verify.
    assert verify.attempts >= 2 and billing.calls["erase"] == 1 + verify.attempts
    with billing.db() as conn:
        assert conn.execute("SELECT count(*) FROM erasures").fetchone()[0] == 2
    assert billing.held(f"email:{person.email}") == 0 and billing.held("email:someone-else@example.org") == 3
    with app.extensions["ownstory_db"]["sessionmaker"]() as db:
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
        claims = issue.claims_of(receipt)
    assert {"store": "billing", "category": "invoices", "rows": 5} in claims["purged"]  # each invoice once
    assert "Nothing is left: deleted 3 invoices that came in while access was being revoked." in client.get(
        status_path).get_data(as_text=True)


@pytest.fixture
def billing_takes_one(config_files, billing):
    """The data map says the billing service takes one erasure at a time: before the app reads it."""
    takes_at_once(config_files["datamap"], BILLING_STORE, 1)


def test_verify_erases_late_invoices_only_when_the_service_has_a_call_free(
        billing_takes_one, app, billing, client, make_person, login, csrf_post, worker, demo_state, database_url):
    # Verify's erasure at a service is a call there like a purge's, and keeps to its max_in_flight: while
    # another worker holds the billing service's one call, verify waits for it, keeping its lease.
    assert app.extensions["datamap"].store("billing").max_in_flight == 1
    person = joined_person(client, make_person, login, csrf_post)
    billing.add_invoices(f"email:{person.email}", 2)
    demo_state.faults.set("revoke", status=503)  # verify waits for the revocation
    request_id = submit_optout(client, csrf_post, "all").split("?")[0].rsplit("/", 1)[1]
    drain_until(worker, app, request_id, lambda steps: billing_step(steps).status == "done")
    billing.add_invoices(f"email:{person.email}", 3)  # the platform bills through the token, still live
    demo_state.faults.clear("revoke")

    engine = make_engine(database_url)
    elsewhere = shared_slots.for_engine(engine).take("purge:billing", 1)  # another worker's call there
    assert elsewhere is not None
    try:
        with ThreadPoolExecutor(1) as background:
            draining = background.submit(drain_until, worker, app, request_id, completed, 40.0)
            wait_for(lambda: any(s.kind == "verify" and s.status == "running" for s in steps_of(app, request_id)),
                     20, "verify to be under way")
            time.sleep(1.0)  # time enough for verify to have called the service, were it not waiting its turn
            assert billing.calls["erase"] == 1 and billing.held(f"email:{person.email}") == 3
            elsewhere.release()
            elsewhere = None
            steps = draining.result(timeout=40)
    finally:
        if elsewhere is not None:
            elsewhere.release()
        engine.dispose()
    verify = next(s for s in steps if s.kind == "verify")
    assert verify.result["late_rows"] == [{"store": "billing", "category": "invoices", "rows": 3}]
    assert verify.attempts == 1 and billing.calls["erase"] == 2 and billing.held(f"email:{person.email}") == 0


def test_a_service_that_never_confirms_needs_attention_and_is_never_done(app, billing, client, make_person, login,
                                                                        csrf_post, worker):
    app.extensions["datamap"].store("billing").service.poll_for = 0.1
    billing.polls_before_done = None
    request_id, status_path = left(app, client, make_person, login, csrf_post, billing)
    steps = drain_until(worker, app, request_id, lambda s: billing_step(s).attempts >= QUICK_RETRIES + 1)
    step = billing_step(steps)
    assert step.status == "needs_attention"
    assert "has not confirmed the deletion yet" in step.last_error
    assert not any(s.status == "done" for s in steps if s.kind in ("verify", "receipt"))
    status = client.get(status_path).get_data(as_text=True)
    assert "Not done yet" in status and "Billing service confirmed" not in status


def test_a_service_that_asks_to_wait_is_asked_nothing_more_until_then(app, billing, worker, sessions):
    # A crowd leaves, and the billing service is overwhelmed: 503 with Retry-After. It asks every caller the same.
    ctx = context_from_app(app)
    emails = [f"crowd{n}@example.org" for n in range(5)]
    with sessions() as db:
        request_ids = []
        for email in emails:
            billing.add_invoices(f"email:{email}", 2)
            submitted = service.submit(db, ctx, user=None, grants=[], scope="all", now=utcnow(), source="service",
                                       email=email)
            request_ids.append(submitted.request.id)
        db.commit()
    billing.faults.set("erase", status=503, retry_after=RETRY_AFTER)
    started = utcnow()
    worker.drain()
    held_until = started + dt.timedelta(seconds=RETRY_AFTER)
    purges = [billing_step(steps_of(app, r)) for r in request_ids]
    tried = [s for s in purges if s.attempts]
    # Only the calls already under way when it first said so were made (the worker runs 2 steps at once).
    assert 1 <= len(tried) <= 2 and billing.calls["erase"] == len(tried)
    assert all(s.status == "pending" and s.not_before >= held_until for s in purges if not s.attempts)
    later_phases = [s for r in request_ids for s in steps_of(app, r) if s.kind in ("verify", "receipt", "notify")]
    assert all(s.not_before >= held_until for s in later_phases)
    waiting = next(s for s in purges if not s.attempts)
    with sessions() as db:
        shown = progress.groups(db.get(OptOutRequest, waiting.request_id).steps, ctx.networks,
                                wording.store_kinds(ctx.datamap), utcnow())
    [deleting] = [g for g in shown if g.key == "delete"]
    assert ("Have the Billing service delete your invoices: Billing service asked us to wait a little; we try again "
            "in about 1 minute") in deleting.outcome, deleting.outcome

    # Once the wait is over, and the service answers again, every purge goes through, each with one erasure.
    billing.faults.clear("erase")
    later = held_until + dt.timedelta(minutes=5)
    for _ in range(20):
        if not worker.run_once(now=later):
            break
    purges = [billing_step(steps_of(app, r)) for r in request_ids]
    assert {s.status for s in purges} == {"done"} and {s.result["rows"] for s in purges} == {2}
    assert billing.calls["erase"] == len(tried) + len(emails)
    assert all(billing.held(f"email:{email}") == 0 for email in emails)


def test_a_service_that_takes_one_erasure_at_once_gets_no_more_from_two_workers(billing_takes_one, make_app, billing):
    # The data map says the billing service takes one erasure at a time: two workers of 4 threads keep to it.
    built = make_app()
    ctx = context_from_app(built)
    assert ctx.datamap.store("billing").max_in_flight == 1
    emails = [f"crowd{n}@example.org" for n in range(6)]
    with serve(built) as ownstory, built.extensions["ownstory_db"]["sessionmaker"]() as db:
        billing.keys.jwks_url = f"{ownstory.url}/.well-known/jwks.json"
        request_ids = []
        for email in emails:
            billing.add_invoices(f"email:{email}", 2)
            request_ids.append(service.submit(db, ctx, user=None, grants=[], scope="all", now=utcnow(),
                                              source="service", email=email).request.id)
        db.commit()
        billing.faults.set("erase", delay=0.3)  # each erasure answered 0.3 s late: long enough to meet the others
        workers = [Worker(built, threads=4) for _ in range(2)]
        try:
            with ThreadPoolExecutor(2) as both:
                list(both.map(lambda w: w.drain(), workers))
        finally:
            for w in workers:
                w.close()
        purges = [billing_step(steps_of(built, r)) for r in request_ids]
    assert billing.under_way.busiest["erase"] == 1  # never two at once: 6 without the limit
    assert {s.status for s in purges} == {"done"} and {s.result["rows"] for s in purges} == {2}
    assert {s.attempts for s in purges} == {1}  # a purge that waited for its turn spent no attempt
    assert billing.calls["erase"] == len(emails)
    assert all(billing.held(f"email:{email}") == 0 for email in emails)
