"""Demo Social down (its own /outage switch) while a person leaves: their data is deleted at once, the page says
in words that only the revocation waits, and once the network is back verify looks at every store again and
deletes what came in meanwhile, each row counted once on the receipt."""
from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from app.db import utcnow
from app.text import date_text
from erasure.engine.worker import Worker
from erasure.models import ErasureStep, OptOutRequest, Receipt
from erasure.receipts import issue
from tests.conftest import db_session
from tests.erasure.engine.helpers_processes import held_rows
from tests.erasure.engine.test_steps import add_post
from tests.erasure.helpers_optout import demo_token_active, joined_person, purged_rows, sealed_tokens, submit_optout

ACCOUNT, HANDLE = "1002", "omar"  # a seeded Demo Social account, with 20 posts and more on the platform


class Omar:
    """The platform-side identities of the person leaving, for counting their rows."""

    account, handle = ACCOUNT, HANDLE

    def __init__(self, email: str) -> None:
        self.email = email


@pytest.fixture
def worker(app):
    """One round claims every due step, as a free worker would within seconds of the opt-out."""
    w = Worker(app, threads=2, batch=32)
    yield w
    w.close()


@pytest.fixture
def outage(demo_network) -> Iterator:
    """Demo Social's outage switch, pressed as its operator would, through its page; up again afterwards."""
    browser = requests.Session()

    def switch(state: str) -> None:
        page = browser.get(f"{demo_network.url}/outage", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        answer = browser.post(f"{demo_network.url}/outage", data={"csrf_token": token, "state": state}, timeout=10)
        assert f"Demo Social is {state}" in answer.text

    yield switch
    switch("up")


def steps_of(app, request_id: str) -> list[ErasureStep]:
    with db_session(app) as db:
        return list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                               .order_by(ErasureStep.position)))


def test_an_outage_holds_back_no_deletion_only_the_revocation(app, client, make_person, login, csrf_post, api_token,
                                                               worker, outage, demo_network, platform_url):
    person = joined_person(client, make_person, login, csrf_post, account=ACCOUNT)
    omar = Omar(person.email)
    access, refresh = sealed_tokens(app, ACCOUNT)
    held = held_rows(platform_url, omar)
    assert held["posts"] == 20

    outage("down")
    status_path = submit_optout(client, csrf_post, "all")
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
    worker.run_once()

    # Deleted at once, while Demo Social does not answer (the token still works there).
    assert held_rows(platform_url, omar) == dict.fromkeys(held, 0)
    steps = steps_of(app, request_id)
    revoke = next(s for s in steps if s.kind == "revoke")
    assert revoke.status == "retrying" and revoke.last_error.startswith("HTTP 503 from Demo Social")
    assert purged_rows(steps) == held
    assert {s.status for s in steps if s.kind not in ("revoke", "purge")} == {
        "pending"}, "forget, verify and the receipt wait for the revocation"

    # The person reads that only the revocation is pending, in words; the network's answer is for operators.
    page = client.get(status_path).get_data(as_text=True)
    with db_session(app) as db:
        by = date_text(db.get(OptOutRequest, request_id).deadline)
    assert f"Demo Social is not answering; we keep trying and will finish by {by}." in page
    assert "HTTP 503" not in page and "temporarily_unavailable" not in page
    assert escape(revoke.last_error) not in page
    assert "Deleted 1 profile entry, 20 posts" in page  # the posts, gone already
    assert "Waiting until access is revoked everywhere." in page
    shown = client.get(f"/api/v1/optouts/{request_id}", headers={"Authorization": f"Bearer {api_token('operator')}"})
    assert next(s for s in shown.json["steps"] if s["kind"] == "revoke")["last_error"].startswith(
        "HTTP 503 from Demo Social")

    # The platform takes one more post through the token before the revocation goes through.
    add_post(platform_url, ACCOUNT)
    outage("up")
    worker.run_once(now=max(utcnow(), revoke.not_before))
    assert next(s for s in steps_of(app, request_id) if s.kind == "revoke").status == "done"
    assert not demo_token_active(demo_network, refresh) and not demo_token_active(demo_network, access)
    worker.drain()

    steps = steps_of(app, request_id)
    assert {s.status for s in steps} == {"done"}
    assert held_rows(platform_url, omar) == dict.fromkeys(held, 0)
    # Verify, once access was revoked, took the late post: each row counted once.
    assert purged_rows(steps) == held
    assert next(s for s in steps if s.kind == "verify").result == {
        "residual_rows": 0, "late_rows": [{"store": "platform", "category": "posts", "rows": 1}]}
    assert ("Nothing is left: deleted 1 post that came in while access was being revoked."
            in client.get(status_path).get_data(as_text=True))
    with db_session(app) as db:
        assert db.get(OptOutRequest, request_id).status == "completed"
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
    purged = {p["category"]: p["rows"] for p in issue.claims_of(receipt)["purged"]}
    assert purged == {**held, "posts": held["posts"] + 1}
