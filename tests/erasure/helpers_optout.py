"""Helpers for opt-out tests: a person connected to Demo Social over real OAuth, and platform counts."""
from __future__ import annotations

import hashlib
from email import policy
from email.parser import BytesParser
from pathlib import Path

from sqlalchemy import create_engine, select, text

from tests.consent.helpers_connect import connect_through_demo

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


def submit_optout(client, csrf_post, scope: str = "all", **fields):
    response = csrf_post(client, "/optout", {"scope": scope, "public_status": "yes", **fields})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


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

    with app.extensions["ownstory_db"]["sessionmaker"]() as db:
        return list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                               .order_by(ErasureStep.position)))
