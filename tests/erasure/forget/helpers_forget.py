"""Leaving without an account, through the pages: the link mailed, the form sent."""
from __future__ import annotations

import re

from tests.erasure.helpers_optout import outbox

LINK = re.compile(r"http://localhost(/forget/email/[A-Za-z0-9_-]+)")
STATUS = re.compile(r"^/optout/([0-9a-f-]{36})\?k=[A-Za-z0-9_-]+$")


def leave(client, csrf_post, **fields) -> str:
    response = csrf_post(client, "/forget/optout", {"public_status": "yes", **fields})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert STATUS.match(response.headers["Location"]), response.headers["Location"]
    return response.headers["Location"]


def ask_for_link(client, csrf_post, address: str, **kwargs):
    return csrf_post(client, "/forget/email", {"email": address}, page="/forget", **kwargs)


def mailed_link(app, address: str) -> str:
    mails = [m for m in outbox(app) if m["To"] == address and "leave the platform" in m["Subject"]]
    assert mails, f"no link was mailed to {address}"
    return LINK.search(mails[-1].get_content()).group(1)
