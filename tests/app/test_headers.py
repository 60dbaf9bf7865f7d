"""Security headers on every answer: each page (for each role), Demo Social's pages under /demo, and the API."""
import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import csrf_token_from
from tests.erasure.helpers_optout import outbox
from tests.helpers_browser import screenshot

ROLES = [None, "person", "operator", "auditor"]

# GET routes with arguments, with a value each (most answer 404 or 400: an error page needs the headers too).
WITH_ARGUMENTS = [
    "/static/style.css", "/optout/not-a-request", "/receipts/not-a-receipt", "/receipts/not-a-receipt/bundle.json",
    "/forget/email/not-a-token", "/networks/demo/callback?code=x&state=y", "/forget/networks/demo/callback",
    "/drp/verify/networks/demo/callback?code=x&state=y", "/drp/verify/networks/nowhere/callback",
    "/operator/requests/not-a-request", "/auditor/export.csv", "/auditor/export.json",
    f"/api/v1/receipts/{uuid.uuid4()}", "/api/v1/log/leaves/0", "/api/v1/optouts/not-a-request",
    "/no-such-page", "/api/v1/no-such-thing",
]


def assert_secure(answer, where: str) -> None:
    headers = answer.headers
    policy = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy, where
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy, where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") in ("no-referrer", "strict-origin-when-cross-origin"), where


def get_routes_without_arguments(app) -> list[str]:
    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if "GET" in rule.methods and not rule.arguments)


@pytest.fixture
def demo_app_mounted(make_app, tmp_path):
    """The app as `make run` builds it: Demo Social served at /demo."""
    return make_app({"DEMO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo_social.db'}"}, demo="1")


@pytest.mark.parametrize("role", ROLES)
def test_every_page_sends_the_security_headers(demo_app_mounted, signed_in, role):
    app = demo_app_mounted
    client = signed_in(role)
    paths = get_routes_without_arguments(app) + WITH_ARGUMENTS
    assert len(paths) > 40
    for path in paths:
        answer = client.get(path)
        answer.close()  # read to the end, as a browser does: the export is streamed
        assert answer.status_code != 500, path
        assert_secure(answer, f"{path} as {role or 'a visitor'}")


def test_demo_social_under_demo_sends_them_too(demo_app_mounted, client):
    demo = demo_app_mounted.extensions["demo_app"]
    paths = [rule.rule for rule in demo.url_map.iter_rules() if "GET" in rule.methods and not rule.arguments]
    paths += ["/static/demo.css", "/oauth/authorize?client_id=nobody&response_type=code"]
    for path in paths:
        assert_secure(client.get("/demo" + path), "/demo" + path)


def test_api_answers_send_them(client, api_token):
    for role in ("operator", "auditor", "service"):
        headers = {"Authorization": f"Bearer {api_token(role)}"}
        for path in ("/api/v1/optouts", "/api/v1/audit", "/api/v1/sweeps", "/api/v1/log/checkpoint"):
            assert_secure(client.get(path, headers=headers), f"{path} as {role}")
    answer = client.post("/api/v1/receipts/verify", json={"receipt": "not.a.receipt"})
    assert answer.status_code < 500
    assert_secure(answer, "POST /api/v1/receipts/verify")
    assert_secure(client.post("/api/v1/consent/check", json={}), "POST /api/v1/consent/check without a token")


def test_a_stricter_referrer_policy_is_kept(client):
    # The one-time link is a capability in the address: its pages send no Referer at all.
    answer = client.get("/forget/email/not-a-token")
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers.getlist("Referrer-Policy") == ["no-referrer"]


# What a browser sends behind an HTTPS proxy: the proxy's forwarded scheme and host, and, for a form
# posted from one of our no-referrer pages, no Referer but Sec-Fetch-Site (which no page can set).
HTTPS_PROXY = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "localhost"}


def test_behind_an_https_proxy_a_form_on_a_no_referrer_page_still_works(make_app):
    app = make_app(trusted_proxies="1", base_url="https://localhost")
    client = app.test_client()
    page = client.get("/forget", headers=HTTPS_PROXY).get_data(as_text=True)
    asked = client.post("/forget/email", data={"email": "mei@example.org", "csrf_token": csrf_token_from(page)},
                        headers={**HTTPS_PROXY, "Referer": "https://localhost/forget"})
    assert asked.status_code == 200
    link = re.search(r"https://localhost(/forget/email/[A-Za-z0-9_-]+)", outbox(app)[-1].get_content()).group(1)
    opened = client.get(link, headers=HTTPS_PROXY)
    assert opened.headers["Referrer-Policy"] == "no-referrer"  # the link is a capability: it stays strict
    token = csrf_token_from(opened.get_data(as_text=True))
    form = {"csrf_token": token}
    from_elsewhere = client.post(link, data=form, headers={**HTTPS_PROXY, "Sec-Fetch-Site": "cross-site"})
    assert from_elsewhere.status_code == 400
    confirmed = client.post(link, data=form, headers={**HTTPS_PROXY, "Sec-Fetch-Site": "same-origin"})
    assert confirmed.status_code == 303 and confirmed.headers["Location"].endswith("/forget/optout")


@pytest.mark.browser
def test_the_policy_breaks_nothing_in_a_browser(live_app, browser_page):
    """Every page still has its stylesheet under the policy, Demo Social's included, and none is refused."""
    from tests.conftest import PASSWORD

    _, base = live_app
    page = browser_page
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(base + "/signup")
    page.get_by_label("Email").fill("styled@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("button", name="Connect Demo Social").click()
    # Demo Social's stylesheet, now a file: its body is 32rem wide at most. Waited for: the click only starts
    # the way there, and a busy machine read the page's style before its stylesheet had loaded.
    expect(page).to_have_url(re.compile(r"/demo/oauth/authorize\?"))
    expect(page.locator("body")).to_have_css("max-width", "512px")
    screenshot(page, "headers-demo-authorize")
    page.get_by_role("button", name="Allow").click()
    for path in ("/me", "/consents", "/optout", "/"):
        page.goto(base + path)
        assert page.evaluate("getComputedStyle(document.querySelector('header.site')).display") != "inline", path
    assert refused == []
