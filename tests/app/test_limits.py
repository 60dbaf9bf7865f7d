"""Rate limits: a refusal explains itself (a page for people, the contract's JSON for programs), and behind
OWNSTORY_TRUSTED_PROXIES each client is counted apart."""
import datetime as dt
import re

import pytest
from flask import request

from app.extensions import limiter


def refused_sign_in(client, csrf_post, **kwargs):
    """Sign in wrongly, each time to another address, until the per-address limit refuses; returns the refusal.
    (Another address each time: the per-account limit on failed sign-ins is not what these tests are about.)"""
    for n in range(30):
        answer = csrf_post(client, "/login", {"email": f"nobody{n}@example.org", "password": "not the password"},
                           **kwargs)
        if answer.status_code == 429:
            return answer
        assert answer.status_code == 400
    pytest.fail("sign-in was never refused")


def test_a_refused_sign_in_is_a_friendly_page_that_says_when(make_app, csrf_post):
    app = make_app({"RATELIMIT_ENABLED": True})
    answer = refused_sign_in(app.test_client(), csrf_post)
    page = answer.get_data(as_text=True)
    assert answer.mimetype == "text/html"
    assert "Too Many Requests" not in page and "per 1 minute" not in page
    assert "Nothing was lost" in page and "Leaving is always two clicks away" in page  # our own page
    when = re.search(r'It will work again from <time datetime="([^"]+)">', page)
    assert when, page
    at = dt.datetime.strptime(when.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    wait = (at - dt.datetime.now(dt.UTC)).total_seconds()
    assert 0 < wait <= 61  # the per-minute limit refused it: it works again within the minute
    assert 0 < int(answer.headers["Retry-After"]) <= 61


def test_a_refused_forget_request_is_the_same_page(make_app, csrf_post):
    app = make_app({"RATELIMIT_ENABLED": True})
    client = app.test_client()
    answers = [csrf_post(client, "/forget/email", {"email": f"p{n}@example.org"}, page="/forget")
               for n in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert "Nothing was lost" in answers[-1].get_data(as_text=True)


def test_an_api_refusal_stays_json_in_the_contract_shape(make_app):
    app = make_app({"RATELIMIT_ENABLED": True})
    # No API route is limited today; one made for the test goes through the same error handling.
    app.add_url_rule("/api/v1/test-limited", "test_limited", limiter.limit("1 per minute")(lambda: {"ok": True}))
    client = app.test_client()
    assert client.get("/api/v1/test-limited").status_code == 200
    answer = client.get("/api/v1/test-limited")
    assert answer.status_code == 429 and answer.mimetype == "application/json"
    assert answer.json["error"]["code"] == "rate_limited"
    assert set(answer.json) == {"error"} and set(answer.json["error"]) == {"code", "message"}
    assert 0 < int(answer.headers["Retry-After"]) <= 61


# --- OWNSTORY_TRUSTED_PROXIES ------------------------------------------------------------------

PROXY = {"REMOTE_ADDR": "10.0.0.1"}  # every request reaches Ownstory from the proxy
WRONG = {"email": "someone.else@example.org", "password": "not the password"}


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(make_app, csrf_post):
    app = make_app({"RATELIMIT_ENABLED": True}, trusted_proxies="1")
    client = app.test_client()
    first = {"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Proto": "http"}
    refused_sign_in(client, csrf_post, headers=first, environ_base=PROXY)
    second = csrf_post(client, "/login", WRONG, headers={"X-Forwarded-For": "203.0.113.2"}, environ_base=PROXY)
    assert second.status_code == 400  # a wrong password, not a refusal: its own limit is untouched


def test_without_trusted_proxies_the_forwarded_header_is_ignored(make_app, csrf_post):
    app = make_app({"RATELIMIT_ENABLED": True})
    client = app.test_client()
    refused_sign_in(client, csrf_post, headers={"X-Forwarded-For": "203.0.113.1"}, environ_base=PROXY)
    # Claiming another address changes nothing: it is the proxy's address that counts.
    second = csrf_post(client, "/login", WRONG, headers={"X-Forwarded-For": "203.0.113.2"}, environ_base=PROXY)
    assert second.status_code == 429


def test_a_trusted_proxy_forwards_the_scheme_and_host(make_app):
    app = make_app(trusted_proxies="1")
    seen = {}

    def where() -> str:
        seen.update(url=request.url_root, addr=request.remote_addr)
        return ""

    app.add_url_rule("/test-where", "test_where", where)
    app.test_client().get("/test-where", environ_base=PROXY, headers={
        "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "own.example.org"})
    assert seen == {"url": "https://own.example.org/", "addr": "203.0.113.9"}
