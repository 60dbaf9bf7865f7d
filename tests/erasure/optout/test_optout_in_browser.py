"""Leaving in a real browser: from /me to a submitted opt-out in two clicks, then the status page reaches "Done."."""
import re

import pytest
from playwright.sync_api import expect

from erasure.engine.worker import Worker
from erasure.optout.service import REASONS
from tests.erasure.helpers_optout import join_in_browser, request_steps
from tests.helpers_browser import screenshot

pytestmark = pytest.mark.browser

STATUS_URL = re.compile(r"/optout/([0-9a-f-]{36})\?k=[A-Za-z0-9_-]+$")


def test_from_my_data_to_done_in_two_clicks(live_app, browser_page):
    app, base = live_app
    page = browser_page
    join_in_browser(page, base)
    screenshot(page, "optout-1-my-data")

    clicks = 0

    def click(locator) -> None:
        nonlocal clicks
        clicks += 1
        locator.click()

    click(page.get_by_role("navigation").get_by_role("link", name="Opt out"))
    form = page.locator("main").inner_text()
    deadline = app.config["ERASURE_DEADLINE_DAYS"]
    assert f"by {deadline} days from now" in form  # by when
    assert "We revoke Example Platform's access at every network for you" in form
    assert "You can come back at any time, starting now." in form
    assert "like my score" not in page.content().lower()
    page.locator("summary").click()  # opened only to look at the reasons: not one of the person's clicks
    reasons = page.locator("input[name=reason] + label").all_inner_texts()
    assert set(REASONS.values()) <= set(reasons)
    assert not [r for r in reasons if "my score" in r.lower()]
    screenshot(page, "optout-2-form")

    click(page.get_by_role("button", name="Delete everything and close my account", exact=True))
    assert clicks <= 2
    match = STATUS_URL.search(page.url)
    assert match, page.url

    # No worker has run yet: every step is listed, grouped, and waits.
    steps = request_steps(app, match.group(1))
    assert len(steps) >= 5
    shown = page.locator("ol.steps > li:not(:has(ol)), ol.substeps > li")
    assert shown.count() == len(steps)  # each one, folded or not
    titles = page.locator("ol.steps > li > strong").all_inner_texts()
    assert "Revoke our access at Demo Social" in titles and "Delete your data" in titles
    assert page.locator("#progress").inner_text() == f"0 of {len(steps)} steps done"
    assert page.locator("#progress").get_attribute("aria-live") == "polite"
    assert page.locator("p.status").inner_text().startswith("Received")
    screenshot(page, "optout-3-status-received")

    # Where the person is on the page stays where it is while the steps update: no reload.
    page.locator("ol.steps summary").first.click()
    page.locator("ol.steps summary").first.focus()
    page.evaluate("window.notReloaded = true")
    worker = Worker(app, threads=2)
    try:
        worker.drain()
    finally:
        worker.close()
    page.locator("p.status", has_text="Done.").wait_for(timeout=15000)
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    assert page.locator("ol.steps details").first.get_attribute("open") is not None
    assert page.locator("#progress").inner_text() == f"{len(steps)} of {len(steps)} steps done"
    assert page.locator("ol.steps > li.done").count() == page.locator("ol.steps > li").count()
    assert "Revoked, confirmed by the network" in page.locator("ol.steps").inner_text()
    assert "20 posts" in page.locator("ol.steps").inner_text()
    page.get_by_role("link", name="See your signed deletion receipt").wait_for()
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    screenshot(page, "optout-4-status-done")


def test_the_form_works_with_the_keyboard_alone(live_app, browser_page):
    app, base = live_app
    page = browser_page
    join_in_browser(page, base)

    def tab_to(name: str) -> None:
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == name:
                return
        raise AssertionError(f"Tab never reaches {name!r}")

    tab_to("Opt out")
    page.keyboard.press("Enter")
    page.wait_for_url("**/optout")
    tab_to("Delete everything and close my account")
    screenshot(page, "optout-5-keyboard-focus")
    page.keyboard.press("Enter")
    page.wait_for_url(STATUS_URL)
    expect(page.get_by_role("heading", name="Your opt-out")).to_be_visible()
