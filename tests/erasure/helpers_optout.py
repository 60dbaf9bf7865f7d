"""Helpers for opt-out tests: a person connected to Demo Social over real OAuth (through the pages, a browser or
/forget), what the network and the consent check then say, and platform counts."""
from __future__ import annotations

import hashlib
from email import policy
from email.parser import BytesParser
from pathlib import Path

import requests
from sqlalchemy import create_engine, select, text

from consent.models import Grant
from erasure.context import context_from_app
from tests.conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, PASSWORD, db_session
from tests.consent.helpers_connect import answer_at_network, connect_through_demo, local_path

PLATFORM_TABLES = {"profiles": "account_id", "posts": "author_id", "endorsements": "giver_id"}


def joined_person(client, make_person, login, csrf_post, account: str = "1001", consent: bool = True):
    """Sign up, connect Demo Social as `account` and consent to scoring, all through the pages."""
    person = make_person()
    login(client, person)
    back = connect_through_demo(client, csrf_post, account)
    assert back.status_code in (302, 303), back.get_data(as_text=True)
    if consent:
        response = csrf_post(client, "/consents", {"consent:demo:scoring": "on"})
        assert response.status_code in (302, 303)
    return person


def join_in_browser(page, base: str) -> None:
    """Sign up, connect Demo Social and consent to scoring in a real browser, then stand on /me."""
    from playwright.sync_api import expect  # only the browser tests have a browser

    page.goto(base + "/signup")
    page.get_by_label("Email").fill("leaver@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("button", name="Connect Demo Social").click()
    page.get_by_role("button", name="Allow").click()
    page.locator("input[name='consent:demo:scoring']").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: you gave 1 consent.")).to_be_visible()  # before leaving the page
    page.goto(base + "/me")
    assert "Demo Social" in page.get_by_role("table").first.inner_text()


def start_at_network(client, csrf_post) -> str:
    """Ask /forget to prove control of a Demo Social account; returns the network's sign-in URL."""
    started = csrf_post(client, "/forget/networks/demo", page="/forget")
    assert started.status_code == 303, started.get_data(as_text=True)
    return started.headers["Location"]


def prove_account(client, csrf_post, account: str):
    """Sign in at Demo Social through /forget; returns the callback's answer."""
    back = answer_at_network(start_at_network(client, csrf_post), "allow", account)
    assert back.startswith("http://localhost/forget/networks/demo/callback?")
    return client.get(local_path(back))


def submit_optout(client, csrf_post, scope: str = "all", **fields):
    response = csrf_post(client, "/optout", {"scope": scope, "public_status": "yes", **fields})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def sealed_tokens(app, account: str) -> tuple[str, str]:
    """The access and refresh tokens Ownstory holds for a Demo Social account, opened."""
    vault = context_from_app(app).vault
    with db_session(app) as db:
        grant = db.scalar(select(Grant).where(Grant.account_id == account))
        return vault.open(grant.access_token), vault.open(grant.refresh_token)


def demo_token_active(demo_network, token: str) -> bool:
    """Whether Demo Social still takes the token, by its RFC 7662 introspection."""
    answer = requests.post(f"{demo_network.url}/oauth/introspect", data={"token": token},
                           auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), timeout=10)
    answer.raise_for_status()
    return answer.json()["active"]


def check_consent(app, api_token, account: str, purpose: str = "scoring") -> str:
    """What the consent check tells a platform about a Demo Social account: its reason."""
    token = api_token("service")
    answer = app.test_client().post("/api/v1/consent/check", headers={"Authorization": f"Bearer {token}"},
                                    json={"checks": [{"network": "demo", "account": account, "purpose": purpose}]})
    return answer.json["results"][0]["reason"]


def platform_rows(platform_url: str, table: str, column: str, value: str) -> int:
    engine = create_engine(platform_url)
    with engine.connect() as conn:
        n = conn.scalar(text(f"SELECT count(*) FROM {table} WHERE {column} = :v"), {"v": value})
    engine.dispose()
    return n


def others_checksum(platform_url: str, account: str) -> str:
    """A digest of every row that is not the person's: it must not change when they leave."""
    engine = create_engine(platform_url)
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table, column in PLATFORM_TABLES.items():
            rows = conn.execute(text(f"SELECT * FROM {table} WHERE {column} != :v ORDER BY id"), {"v": account})
            for row in rows:
                cleaned = tuple(None if v == account else v for v in row)  # received endorsements are nullified
                digest.update(repr(cleaned).encode())
    engine.dispose()
    return digest.hexdigest()


def outbox(app) -> list:
    folder = Path(app.config["OUTBOX_PATH"])
    if not folder.exists():
        return []
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def request_steps(app, request_id: str):
    from erasure.models import ErasureStep

    with db_session(app) as db:
        return list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                               .order_by(ErasureStep.position)))


def purged_rows(steps) -> dict[str, int]:
    """The rows a request's purge steps (one a store) counted, by category."""
    counted: dict[str, int] = {}
    for s in steps:
        if s.kind == "purge":
            for part in s.result.get("categories", []):
                if "rows" in part:
                    counted[part["category"]] = counted.get(part["category"], 0) + part["rows"]
    return counted


def lay_second_pass(app, request_id: str) -> None:
    """Make the request one laid before verify took over the look after revocation: a second purge pass per
    store, once access is revoked, between the first pass and forget, as those requests were laid."""
    from erasure.models import ErasureStep, StepKind
    from erasure.optout.service import AFTER_REVOCATION, SECOND_PASS

    with db_session(app) as db:
        laid = list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                               .order_by(ErasureStep.position.desc())))
        purges = sorted((s for s in laid if s.kind == StepKind.PURGE), key=lambda s: s.position)
        at = max(s.position for s in purges) + 1
        for s in laid:  # one at a time, last first: each position stays unique
            if s.position >= at:
                s.position += len(purges)
                db.flush()
        for n, purge in enumerate(purges):
            db.add(ErasureStep(request_id=request_id, position=at + n, phase=AFTER_REVOCATION, kind=purge.kind,
                               target=purge.target, params={**purge.params, **SECOND_PASS}, status="pending",
                               not_before=purge.not_before))
        db.commit()
