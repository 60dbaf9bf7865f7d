"""The seeded platform store: what it holds, its indexes, and that seeding happens once."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, delete, inspect, or_, select

from demo.accounts import DEMO_ACCOUNTS, sample_posts
from demo.platform import (
    OTHER_PEOPLE,
    PLATFORM_TABLES,
    endorsements,
    mailing_list,
    posts,
    profiles,
    row_counts,
    scores,
    seed_platform_store,
)

PEOPLE = len(DEMO_ACCOUNTS) + len(OTHER_PEOPLE)
IDENTITY_COLUMNS = {
    "profiles": {"account_id", "handle"},
    "posts": {"author_id"},
    "endorsements": {"giver_id", "receiver_id"},
    "scores": {"handle"},
    "mailing_list": {"email"},
}


@pytest.fixture
def store(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/instance/platform.db"  # the folder does not exist yet
    seed_platform_store(url, posts_per_account=6)
    return url


@pytest.fixture
def engine(store):
    engine = create_engine(store)
    yield engine
    engine.dispose()


def rows_about(conn, person) -> dict[str, int]:
    """How many rows each table holds about one person, matched the way the data map matches."""
    matches = {
        "profiles": select(profiles).where(profiles.c.account_id == person.account_id),
        "posts": select(posts).where(posts.c.author_id == person.account_id),
        "endorsements": select(endorsements).where(
            or_(endorsements.c.giver_id == person.account_id, endorsements.c.receiver_id == person.account_id)
        ),
        "scores": select(scores).where(scores.c.handle == person.handle),
        "mailing_list": select(mailing_list).where(mailing_list.c.email == person.email),
    }
    return {name: len(conn.execute(query).all()) for name, query in matches.items()}


def test_every_table_holds_rows_for_every_demo_account_and_for_other_people(store, engine):
    assert row_counts(store) == {
        "profiles": PEOPLE,
        "posts": PEOPLE * 6,
        "endorsements": PEOPLE * 2,
        "scores": PEOPLE,
        "mailing_list": PEOPLE,
    }
    with engine.connect() as conn:
        for person in (*DEMO_ACCOUNTS, *OTHER_PEOPLE):
            held = rows_about(conn, person)
            assert held == {"profiles": 1, "posts": 6, "endorsements": 4, "scores": 1, "mailing_list": 1}, person


def test_endorsements_run_both_ways(store, engine):
    with engine.connect() as conn:
        pairs = set(conn.execute(select(endorsements.c.giver_id, endorsements.c.receiver_id)).all())
    assert all((receiver, giver) in pairs for giver, receiver in pairs)
    demo_ids = {a.account_id for a in DEMO_ACCOUNTS}
    assert any(giver in demo_ids and receiver not in demo_ids for giver, receiver in pairs)
    assert all(giver != receiver for giver, receiver in pairs)


def test_posts_match_what_the_network_serves(store, engine):
    liz = DEMO_ACCOUNTS[0]
    with engine.connect() as conn:
        bodies = set(conn.scalars(select(posts.c.body).where(posts.c.author_id == liz.account_id)))
    assert bodies == {p.body for p in sample_posts(liz, 6)}


def test_every_identity_column_is_indexed(store, engine):
    inspector = inspect(engine)
    for table, columns in IDENTITY_COLUMNS.items():
        indexed = {column for index in inspector.get_indexes(table) for column in index["column_names"]}
        assert columns <= indexed, table
    assert set(PLATFORM_TABLES) == set(IDENTITY_COLUMNS)


def test_purging_one_person_leaves_everyone_else(engine):
    liz = DEMO_ACCOUNTS[0]
    with engine.connect() as conn:
        before = {p.account_id: rows_about(conn, p) for p in (*DEMO_ACCOUNTS, *OTHER_PEOPLE)}
    with engine.begin() as conn:
        conn.execute(delete(posts).where(posts.c.author_id == liz.account_id))
        conn.execute(delete(profiles).where(profiles.c.account_id == liz.account_id))
        conn.execute(delete(scores).where(scores.c.handle == liz.handle))
        conn.execute(delete(mailing_list).where(mailing_list.c.email == liz.email))
    with engine.connect() as conn:
        for person in (*DEMO_ACCOUNTS[1:], *OTHER_PEOPLE):
            after = rows_about(conn, person)
            assert {k: v for k, v in after.items() if k != "endorsements"} == {
                k: v for k, v in before[person.account_id].items() if k != "endorsements"
            }


def test_seeding_again_changes_nothing_and_does_not_bring_purged_rows_back(store, engine):
    before = row_counts(store)
    seed_platform_store(store, posts_per_account=6)
    assert row_counts(store) == before

    liz = DEMO_ACCOUNTS[0]
    with engine.begin() as conn:
        conn.execute(delete(posts).where(posts.c.author_id == liz.account_id))
    seed_platform_store(store, posts_per_account=6)
    assert row_counts(store)["posts"] == before["posts"] - 6


def test_a_custom_account_list_still_gets_the_other_people(tmp_path):
    url = f"sqlite:///{tmp_path}/platform.db"
    seed_platform_store(url, accounts=DEMO_ACCOUNTS[:2], posts_per_account=1)
    assert row_counts(url)["profiles"] == 2 + len(OTHER_PEOPLE)
