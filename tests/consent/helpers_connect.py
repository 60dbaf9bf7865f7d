"""Test helpers for the connect flow: play the person at Demo Social over real HTTP."""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from tests.conftest import BASE_URL

FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PENDING = "networks_oauth"


def start_connect(client, csrf_post, key: str = "demo"):
    """POST /networks/<key>/connect as the signed-in person; the answer redirects to the network."""
    return csrf_post(client, f"/networks/{key}/connect", page="/consents")


def answer_at_network(authorize_url: str, decision: str = "allow", account: str = "1001") -> str:
    """Open the network's sign-in page in a fresh 'browser', choose, and return where it sends us back."""
    browser = requests.Session()
    page = browser.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    action = html.unescape(FORM_ACTION.search(page.text).group(1))
    form = {"csrf_token": CSRF.search(page.text).group(1), "decision": decision, "account": account}
    answer = browser.post(urljoin(authorize_url, action), data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def local_path(url: str) -> str:
    """The path and query of a URL on Ownstory, for the Flask test client."""
    assert url.startswith(BASE_URL + "/"), url
    return url[len(BASE_URL):]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def connect_through_demo(client, csrf_post, account: str = "1001"):
    """The whole happy path: connect, allow at Demo Social, come back. Returns the callback's answer."""
    started = start_connect(client, csrf_post)
    assert started.status_code == 303, started.get_data(as_text=True)
    back = answer_at_network(started.headers["Location"], "allow", account)
    return client.get(local_path(back))
