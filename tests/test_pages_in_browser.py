"""Every page a person, an operator or an auditor sees, at a desktop's size and a phone's, in a real browser:
no serious or critical accessibility violation (axe-core), no sideways scrolling, and the journey reads as
issue 16 asked: the choice followed, private by default, progress in place, plain words, the link kept safe."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from erasure.engine.worker import Worker
from tests.conftest import PASSWORD
from tests.erasure.helpers_optout import join_in_browser
from tests.erasure.oversight.helpers_seed import grow_log
from tests.helpers_axe import DESKTOP, PHONE, check, require_axe
from tests.helpers_browser import screenshot

pytestmark = pytest.mark.browser
SIZES = pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280x800", "390x844"])


@pytest.fixture
def page_at(browser_page):
    """A page at a given window size. axe is put into the page as a script of the test's own, which the
    pages' Content-Security-Policy would refuse: this context alone lets it in."""
    require_axe()
    contexts = []

    def make(size: dict):
        context = browser_page.context.browser.new_context(viewport=size, bypass_csp=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        return page

    yield make
    for context in contexts:
        context.close()


def drain(app) -> None:
    worker = Worker(app, threads=2)
    try:
        worker.drain()
    finally:
        worker.close()


def tag(size: dict) -> str:
    return f"{size['width']}x{size['height']}"


@SIZES
def test_a_person_from_the_home_page_to_the_receipt(live_app, page_at, size):
    app, base = live_app
    page = page_at(size)
    page.goto(base + "/")
    assert "Example Platform" in page.locator("h1").inner_text()
    check(page, "home")
    for path in ("/signup", "/login", "/forget", "/no-such-page"):
        page.goto(base + path)
        check(page, path)

    # Demo Social's consent screen names the platform, not a client id.
    page.goto(base + "/signup")
    page.get_by_label("Email").fill("leaver@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    check(page, "my data, nothing connected")
    page.get_by_role("button", name="Connect Demo Social").click()
    expect(page.locator("main")).to_contain_text("Example Platform wants to use your Demo Social account")
    assert "ownstory-demo" not in page.locator("main").inner_text()
    check(page, "Demo Social's consent screen")
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Consents")).to_be_visible()  # connecting lands on Consents
    check(page, "consents")
    page.locator("input[name='consent:demo:partner_sharing']").check()
    page.get_by_role("button", name="Save").click()

    page.goto(base + "/me")
    main = page.locator("main").inner_text()
    assert "20 posts" in main and "Store" not in main
    check(page, "my data")
    screenshot(page, f"pages-my-data-{tag(size)}")

    # Opting out of one network: the page follows the choice.
    page.goto(base + "/optout?scope=demo")
    expect(page.get_by_role("button", name="Leave Demo Social", exact=True)).to_be_visible()
    assert not page.get_by_text("closes your Ownstory account").count()
    check(page, "opt-out, one network")
    page.get_by_role("link", name="Everything").click()
    leave = page.get_by_role("button", name="Delete everything and close my account", exact=True)
    expect(leave).to_be_visible()
    before = page.locator(".before-leaving").inner_text()
    assert "This signs you out now and closes your Ownstory account" in before
    assert "stays with them for up to 12 months" in before  # what partner sharing cannot recall
    # Private by default, in the open; the reason is optional, folded, and after the button.
    private = page.get_by_label("It may only say nothing is held")
    expect(private).to_be_visible()
    expect(private).to_be_checked()
    order = page.evaluate("""() => [...document.querySelectorAll('form button.leave, form summary')]
                                   .map(e => e.tagName)""")
    assert order == ["BUTTON", "SUMMARY"]
    page.locator("summary").focus()
    ring = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert ring == "solid"  # summary shows its focus
    check(page, "opt-out, everything")
    screenshot(page, f"pages-optout-{tag(size)}")
    leave.click()

    # The status page: the account is closed, the link kept safe, progress in place.
    assert page.locator("main p.lead").inner_text().startswith("Your account is closed.")
    assert "We have emailed you this link." in page.locator(".keep-link").inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy link").click()
    page.locator(".keep-link .copied", has_text="Copied.").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.url and "?k=" in copied
    check(page, "status, received")
    page.evaluate("window.notReloaded = true")
    drain(app)
    page.locator("p.status", has_text="Done.").wait_for()
    assert page.evaluate("window.notReloaded") is True
    assert re.fullmatch(r"(\d+) of \1 steps done", page.locator("#progress").inner_text())
    assert "HTTP" not in page.locator("ol.steps").inner_text()
    check(page, "status, done")
    screenshot(page, f"pages-status-done-{tag(size)}")

    # The receipt: plain words first, the expert's details folded, naming every file needed.
    page.get_by_role("link", name="See your signed deletion receipt").click()
    assert "deleted 1 profile entry, 20 posts" in page.locator("p.lead").inner_text()
    experts = page.locator("details.experts")
    expect(experts.locator("pre")).to_be_hidden()
    experts.locator("summary").click()
    files = experts.locator("ol.files").inner_text()
    for needed in ("ownstory-receipt-", "jwks.json", "log.key", "verifier/"):
        assert needed in files
    check(page, "receipt, details open")
    screenshot(page, f"pages-receipt-{tag(size)}")


@SIZES
def test_staff_pages(live_app, page_at, make_person, size):
    app, base = live_app
    page = page_at(size)
    # A request to look at: someone leaves, and the worker finishes it.
    join_in_browser(page, base)
    page.goto(base + "/optout")
    page.get_by_role("button", name="Delete everything and close my account", exact=True).click()
    query = parse_qs(urlsplit(page.url).query)
    assert query["k"]
    drain(app)
    grow_log(app, 2)
    operator, auditor = make_person(role="operator"), make_person(role="auditor")

    for who, paths in ((operator, ["/operator", "/operator/health"]),
                       (auditor, ["/auditor", "/auditor/checkpoints", "/auditor/consistency", "/auditor/verify"])):
        page.goto(base + "/login")
        page.get_by_label("Email").fill(who.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        for path in paths:
            page.goto(base + path)
            check(page, path)
        if who is operator:
            page.goto(base + "/operator")
            page.locator("table.queue tbody tr").first.get_by_role("link").click()
            page.wait_for_url("**/operator/requests/**")
            check(page, "one request")
        screenshot(page, f"pages-staff-{who.role}-{tag(size)}")
        page.get_by_role("button", name="Sign out").click()


@SIZES
def test_a_person_an_agent_sent_proves_their_account(live_app, page_at, size):
    """An agent names an account and an address it did not verify; the person picks signing in at the network."""
    from tests.erasure.agents.helpers_agent import Agent

    app, base = live_app
    agent = Agent(base, "BROWSER_AGENT")
    added = app.test_cli_runner().invoke(args=["agents", "add", "--id", agent.agent_id, "--verify-key",
                                               agent.verify_key_hex, "--name", "Privacy Helper"])
    assert added.exit_code == 0, added.output
    assert agent.setup().status_code == 200
    status = agent.exercise("deletion", email="mei@demo.example",
                            network_accounts=[{"network": "demo", "account_id": "1003", "verified": False}]).json()

    page = page_at(size)
    page.goto(status["user_verification_url"])
    expect(page.get_by_role("button", name="Mail me the link")).to_be_visible()
    check(page, "an agent's request, to confirm")
    screenshot(page, f"pages-agent-verify-{tag(size)}")
    page.get_by_role("button", name="Sign in at Demo Social").click()
    page.get_by_label("Mei Chen (@mei)").check()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("Your account is confirmed"))
    check(page, "an agent's request, confirmed")
    assert agent.status(status["request_id"]).json()["status"] == "in_progress"
    drain(app)
    assert agent.status(status["request_id"]).json()["status"] == "fulfilled"
