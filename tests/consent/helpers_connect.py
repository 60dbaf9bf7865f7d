"""Test helpers for the connect flow: play the person at Demo Social over real HTTP."""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from sqlalchemy import select

from consent.models import Grant
from tests.conftest import BASE_URL, db_session

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


def stored_grants(app, **where) -> list[Grant]:
    """The grants in the database now, read in a session of their own.

    Not the conftest `session` fixture: it keeps an app context pushed, which the test client's
    requests would then share (its `g`, so Flask-WTF's cached CSRF token and the db session)."""
    with db_session(app) as db:
        return list(db.scalars(select(Grant).filter_by(**where)))


def token_from_demo(network, account: str = "1001") -> tuple[dict, dict]:
    """A real token and userinfo from Demo Social, fetched with the same client code the views use."""
    from authlib.common.security import generate_token

    from consent.oauth import NetworkHttp, fetch_userinfo

    oauth = NetworkHttp().session(network, redirect_uri=f"{BASE_URL}/networks/{network.key}/callback")
    verifier = generate_token(64)
    url, _state = oauth.create_authorization_url(network.authorize_url, code_verifier=verifier, scope=network.scope,
                                                 **dict(network.authorize_params))
    back = answer_at_network(url, "allow", account)
    token = oauth.fetch_token(network.token_url, code=query(back)["code"], code_verifier=verifier,
                              **dict(network.token_params))
    return dict(token), fetch_userinfo(oauth, network)


def flashed(client) -> str:
    """The messages the last redirect left, as the next page shows them."""
    return client.get("/consents").get_data(as_text=True)
