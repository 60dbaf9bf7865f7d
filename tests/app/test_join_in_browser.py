"""A newcomer's first visit in a real browser: sign up, connect Demo Social, consent, and the API agrees."""
import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.helpers_browser import screenshot

pytestmark = pytest.mark.browser


def test_signup_connect_and_consent(live_app, browser_page, api_token):
    app, base = live_app
    page = browser_page
    page.goto(base + "/")
    screenshot(page, "join-1-start")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Email").fill("newcomer@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="My data")).to_be_visible()
    expect(page.get_by_role("link", name="Opt out")).to_be_visible()
    screenshot(page, "join-2-my-data")

    page.get_by_role("button", name="Connect Demo Social").click()
    expect(page.get_by_role("heading", name="Sign in to Demo Social")).to_be_visible()
    screenshot(page, "join-3-demo-authorize")
    page.get_by_role("button", name="Allow").click()

    # Back at Ownstory, on the consents page: nothing is ticked until the person ticks it.
    box = page.locator("input[name='consent:demo:scoring']")
    expect(box).not_to_be_checked()
    screenshot(page, "join-4-consents")
    box.check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: you gave 1 consent.")).to_be_visible()
    expect(page.locator("input[name='consent:demo:scoring']")).to_be_checked()

    page.goto(base + "/me")
    assert "Demo Social" in page.content() and "posts" in page.content()
    screenshot(page, "join-5-my-data-connected")

    with app.app_context():
        from app.extensions import db
        from consent.models import Grant

        account = db.session.query(Grant.account_id).scalar()
    token = api_token("service")
    checks = [{"network": "demo", "account": account, "purpose": p} for p in ("scoring", "research")]
    answer = app.test_client().post("/api/v1/consent/check", json={"checks": checks},
                                    headers={"Authorization": f"Bearer {token}"}).json
    assert answer["results"][0] == {"allowed": True, "reason": "granted"}
    assert answer["results"][1]["allowed"] is False
