"""The operator dashboard and the auditor pages in a real browser, with JavaScript off: requests seeded
in every state, a retry, a receipt verified by upload, a consistency check, an export; a screenshot of each."""
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.models import AuditEvent
from erasure.engine.worker import Worker
from erasure.models import ErasureStep, Receipt
from tests.conftest import PASSWORD, db_session
from tests.erasure.helpers_optout import joined_person, submit_optout
from tests.erasure.oversight.helpers_seed import grow_log, seed_every_state
from tests.helpers_browser import free_port, screenshot
from tests.helpers_servers import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def live(app):
    server = LiveServer(app, port=free_port()).start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture
def no_script_page(browser_page):
    """A page in a context with JavaScript off: every page must work without it."""
    context = browser_page.context.browser.new_context(java_script_enabled=False, viewport={"width": 1280,
                                                                                            "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def a_real_bundle(app, make_person, login, csrf_post, tmp_path):
    """Someone joins through Demo Social and leaves; the worker finishes; their bundle, saved to a file."""
    client = app.test_client()
    joined_person(client, make_person, login, csrf_post, account="1002")
    status_path = submit_optout(client, csrf_post, "all")
    worker = Worker(app, threads=2)
    try:
        worker.drain()
    finally:
        worker.close()
    parts = urlsplit(status_path)
    request_id, k = parts.path.rsplit("/", 1)[1], parse_qs(parts.query)["k"][0]
    with db_session(app) as db:
        receipt_id = db.scalar(select(Receipt.id).where(Receipt.request_id == request_id))
    bundle = client.get(f"/receipts/{receipt_id}/bundle.json?k={k}").json
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle, indent=2))
    return path, bundle


def sign_in(page, base: str, email: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_operators_and_auditors_at_work(app, live, no_script_page, make_person, login, csrf_post, tmp_path, sessions):
    page, base = no_script_page, live
    bundle_file, bundle = a_real_bundle(app, make_person, login, csrf_post, tmp_path)
    ids, secrets = seed_every_state(app, make_person)  # after the worker ran: it would have taken these on
    grow_log(app, 3)
    operator, auditor = make_person(role="operator"), make_person(role="auditor")

    # The operator: the queue, most urgent first, with the time left in words.
    sign_in(page, base, operator.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Erasure queue")).to_be_visible()
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 6
    assert rows.nth(0).locator("td.time-left").inner_text() == "Overdue by 2 days"
    assert rows.nth(1).locator("td.time-left").inner_text() == "5 days left"
    assert "Needs attention" in rows.nth(1).inner_text()
    assert "Revocations are failing at Demo Social (2)" in page.locator("main").inner_text()
    screenshot(page, "dashboard-1-queue")
    secrets.assert_absent(page.content())

    page.get_by_label("Status").select_option("needs_attention")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.queue tbody tr")).to_have_count(1)
    screenshot(page, "dashboard-2-queue-filtered")

    # One request: its steps, attempts and last error; "Retry now" is a form, so it works without script.
    page.locator("table.queue tbody tr").first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("Opt-out request"))).to_be_visible()
    assert "HTTP 503 from Demo Social" in page.locator("table.steps").inner_text()
    screenshot(page, "dashboard-3-request")
    page.get_by_role("button", name="Retry now").click()
    expect(page.get_by_text("1 step will be tried again now.")).to_be_visible()
    screenshot(page, "dashboard-4-retried")
    with sessions() as db:
        assert db.scalar(select(ErasureStep.status).where(ErasureStep.request_id == ids["needs_attention"],
                                                          ErasureStep.kind == "revoke")) == "retrying"
        assert db.scalar(select(AuditEvent.actor_id).where(AuditEvent.action == "optout_retry")) \
            == operator.id
    secrets.assert_absent(page.content())

    page.get_by_role("link", name="Network health and timings").click()
    chart = page.get_by_role("img", name="Time to complete against the deadline, last 30 days")
    expect(chart).to_be_visible()  # named by its <title> for screen readers, and described by its <desc>
    assert "2 requests completed in the last 30 days" in page.locator("svg.chart desc").text_content()
    screenshot(page, "dashboard-5-health")
    secrets.assert_absent(page.content())
    page.get_by_role("button", name="Sign out").click()

    # The auditor: receipts per day, a real bundle verified by upload, a forged one refused.
    sign_in(page, base, auditor.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Receipts and the log")).to_be_visible()
    assert "1 in all" in page.locator("table.per-day caption").inner_text()
    screenshot(page, "auditor-1-overview")

    page.get_by_role("link", name="Verify a receipt").click()
    page.get_by_label("Or upload a bundle file (.json)").set_input_files(str(bundle_file))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^Valid: this receipt was signed by this service"))
    expect(page.locator("table.checks td strong", has_text="Passed")).to_have_count(8)
    screenshot(page, "auditor-2-verify-valid")

    header, payload, signature = bundle["receipt"].split(".")
    forged = {**bundle, "receipt": f"{header}.{payload[:-4]}AAAA.{signature}"}
    page.get_by_label("Paste a receipt").fill(json.dumps(forged))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^Invalid"))  # the valid page had one too
    screenshot(page, "auditor-3-verify-invalid")

    page.get_by_role("link", name="Checkpoints").click()
    assert page.locator("pre.note").inner_text().splitlines()[1] == "4"
    screenshot(page, "auditor-4-checkpoints")
    page.get_by_label("Older tree size").fill("3")
    page.get_by_role("button", name="Check consistency").click()
    expect(page.get_by_role("status")).to_contain_text("Consistent: the tree of 4 contains the tree of 3 unchanged.")
    assert page.locator("ol.trace > li").count() >= 4
    screenshot(page, "auditor-5-consistency")

    page.get_by_role("link", name="Receipts per day").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    exported = download.value.path().read_text()
    assert exported.splitlines()[0].startswith("request_id,requested_at,deadline")
    assert len(exported.splitlines()) == 7
    secrets.assert_absent(exported)
