"""The scoring platform's store, seeded with data about the demo accounts and a few other people."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import make_url

from .accounts import DEMO_ACCOUNTS, DemoAccount, sample_posts

metadata = MetaData()

# Every column that identifies a person is indexed, so a purge can find their rows without a scan.
profiles = Table(
    "profiles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", String(40), nullable=False, index=True),
    Column("handle", String(64), nullable=False, index=True),
    Column("display_name", String(200), nullable=False),
    Column("bio", Text, nullable=False, default=""),
)
posts = Table(
    "posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("author_id", String(40), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
endorsements = Table(
    "endorsements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("giver_id", String(40), nullable=False, index=True),
    Column("receiver_id", String(40), nullable=True, index=True),
    Column("topic", String(100), nullable=False),
)
scores = Table(
    "scores",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("handle", String(64), nullable=False, index=True),
    Column("score", Float, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)
mailing_list = Table(
    "mailing_list",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, index=True),
    Column("subscribed_at", DateTime(timezone=True), nullable=False),
)

PLATFORM_TABLES: dict[str, Table] = {t.name: t for t in (profiles, posts, endorsements, scores, mailing_list)}

# People the platform holds data about who have no demo account: a purge must leave them alone.
OTHER_PEOPLE: tuple[DemoAccount, ...] = (
    DemoAccount("2001", "otto", "Otto Berg", "otto@elsewhere.example"),
    DemoAccount("2002", "priya", "Priya Raman", "priya@elsewhere.example"),
    DemoAccount("2003", "sam", "Sam Lindqvist", "sam@elsewhere.example"),
)

_TOPICS = ("python", "cycling", "gardening", "baking", "music", "open data")
# Fixed times keep the seed identical on every machine and run.
_COMPUTED_AT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
_SUBSCRIBED_AT = datetime(2025, 11, 1, 8, 30, tzinfo=UTC)


def seed_platform_store(url: str, accounts: Sequence[DemoAccount] = DEMO_ACCOUNTS, posts_per_account: int = 20) -> None:
    """Create the platform tables if missing and fill them once; a seeded store is left as it is."""
    _ensure_sqlite_dir(url)
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            if conn.scalar(select(func.count()).select_from(profiles)):
                return
            known = {a.account_id for a in accounts}
            people = list(accounts) + [p for p in OTHER_PEOPLE if p.account_id not in known]
            for table, rows in _rows(people, posts_per_account).items():
                conn.execute(table.insert(), rows)
    finally:
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    """Rows per platform table, for tests and for showing what a purge removed."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.scalar(select(func.count()).select_from(table)) for name, table in PLATFORM_TABLES.items()
            }
    finally:
        engine.dispose()


def _rows(people: list[DemoAccount], posts_per_account: int) -> dict[Table, list[dict]]:
    n = len(people)
    return {
        profiles: [
            {
                "account_id": p.account_id,
                "handle": p.handle,
                "display_name": p.display_name,
                "bio": f"{p.display_name} posts about {_TOPICS[i % len(_TOPICS)]}.",
            }
            for i, p in enumerate(people)
        ],
        posts: [
            {"author_id": post.author_id, "body": post.body, "created_at": post.created_at}
            for p in people
            for post in sample_posts(p, posts_per_account)
        ],
        # Each neighbour pair endorses each other, so everyone both gives and receives.
        endorsements: [
            {"giver_id": giver.account_id, "receiver_id": receiver.account_id, "topic": _TOPICS[i % len(_TOPICS)]}
            for i, p in enumerate(people)
            for giver, receiver in ((p, people[(i + 1) % n]), (people[(i + 1) % n], p))
        ],
        scores: [
            {"handle": p.handle, "score": round(40 + (i * 17) % 55 + 0.5, 1), "computed_at": _COMPUTED_AT}
            for i, p in enumerate(people)
        ],
        mailing_list: [{"email": p.email, "subscribed_at": _SUBSCRIBED_AT} for p in people],
    }


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
