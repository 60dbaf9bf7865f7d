"""/forget and export in a real browser: leaving without an account, and a member's download from My data."""
import json
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.models import User
from erasure.engine.worker import Worker
from tests.conftest import db_session
from tests.erasure.helpers_optout import join_in_browser, platform_rows, request_steps
from tests.helpers_browser import screenshot

pytestmark = pytest.mark.browser

STATUS_URL = re.compile(r"/optout/([0-9a-f-]{36})\?k=[A-Za-z0-9_-]+$")


def test_a_demo_account_that_never_signed_up_leaves_through_forget(live_app, browser_page, platform_url):
    app, base = live_app
    page = browser_page
    assert platform_rows(platform_url, "posts", "author_id", "1003") == 20

    page.goto(base + "/")
    page.get_by_role("navigation").get_by_role("link", name="Leave without an account").click()
    page.wait_for_url("**/forget")
    screenshot(page, "forget-1-start")
    page.get_by_role("button", name="Sign in with Demo Social").click()

    page.get_by_label("Mei Chen (@mei)").check()  # at Demo Social
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url("**/forget/optout")
    assert "@mei" in page.locator("main").inner_text()
    expect(page.get_by_role("link", name="Download what is held about it first")).to_be_visible()
    screenshot(page, "forget-2-form")

    page.get_by_role("button", name="Opt out now").click()
    match = STATUS_URL.search(page.url)
    assert match, page.url
    expect(page.get_by_role("heading", name="Your opt-out")).to_be_visible()
    assert "Keep the address of this page" in page.locator("main").inner_text()
    screenshot(page, "forget-3-status-received")

    worker = Worker(app, threads=2)
    try:
        worker.drain()
    finally:
        worker.close()
    page.locator("p.status", has_text="Done.").wait_for(timeout=15000)
    steps = request_steps(app, match.group(1))
    assert page.locator("#progress").inner_text() == f"{len(steps)} of {len(steps)} steps done"
    assert page.locator("ol.steps li:not(.done)").count() == 0
    page.get_by_role("link", name="See your signed deletion receipt").wait_for()
    screenshot(page, "forget-4-status-done")

    for table, column, value in (("posts", "author_id", "1003"), ("profiles", "account_id", "1003"),
                                 ("scores", "handle", "mei")):
        assert platform_rows(platform_url, table, column, value) == 0, table
    with db_session(app) as db:
        assert db.scalar(select(func.count()).select_from(User)) == 0  # no account was made


def test_a_member_downloads_the_export_from_my_data(live_app, browser_page):
    app, base = live_app
    page = browser_page
    join_in_browser(page, base)
    export_link = page.get_by_role("link", name="Export my data")
    expect(export_link).to_be_visible()
    screenshot(page, "export-1-my-data")

    with page.expect_download() as info:
        export_link.click()
    download = info.value
    assert re.fullmatch(r"ownstory-export-\d{8}-\d{6}\.json", download.suggested_filename)
    document = json.loads(open(download.path(), encoding="utf-8").read())
    assert document["complete"] is True
    assert document["ownstory"]["account"]["email"] == "leaver@example.org"
    assert [g["account_id"] for g in document["ownstory"]["grants"]] == ["1001"]
    posts = document["stores"]["platform"]["posts"][0]["rows"]
    assert len(posts) == 20 and {p["author_id"] for p in posts} == {"1001"}
    assert page.url.endswith("/me")  # a download: the page stays where it was
