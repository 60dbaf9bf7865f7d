"""The sql kind on MariaDB (Debian's mariadb-server, started by the tests): the same data map exports, purges,
verifies and sweeps a person's rows there, and only theirs, though MariaDB compares text ignoring case."""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, func, insert, select, text, update

from app.db import make_engine, utcnow
from demo.platform import PLATFORM_TABLES, posts, seed_platform_store
from erasure.context import context_from_app
from erasure.engine.worker import Worker
from erasure.models import ErasureStep, OptOutRequest, Receipt
from erasure.receipts.issue import claims_of
from erasure.retention import sweeps as retention
from erasure.stores.sql import SqlStore, TableEntry
from tests.conftest import db_session
from tests.erasure.helpers_optout import joined_person, others_checksum, platform_rows, submit_optout
from tests.erasure.stores.helpers_coverage import assert_a_changed_platform_is_seen

SPELLINGS = ["omar", "Omar", "OMAR", "omar ", "ömar", "omär"]  # one identity, and five that only look alike to MariaDB


@pytest.fixture
def platform_url(mariadb):
    """The demo platform store in a MariaDB database of this test's own: the data map's url names it."""
    with mariadb.database("platform") as url:
        seed_platform_store(url)
        yield url


def handles_store(url: str, charset: str) -> tuple[SqlStore, TableEntry]:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE handles (id INTEGER PRIMARY KEY AUTO_INCREMENT, "
                          f"handle VARCHAR(40) CHARACTER SET {charset} NOT NULL, note VARCHAR(40), INDEX (handle))"))
        conn.execute(text("INSERT INTO handles (handle, note) VALUES (:h, :n)"),
                     [{"h": h, "n": f"row of {h!r}"} for h in SPELLINGS])
    engine.dispose()
    entry = TableEntry(store="platform", category="handles", identity="handle", network="demo", table="handles",
                       column="handle")
    return SqlStore("platform", url, (entry,)), entry


@pytest.mark.parametrize("charset", ["utf8mb4", "latin1"])
def test_only_the_persons_own_spelling_is_counted_exported_and_purged(mariadb, charset):
    with mariadb.database() as url:
        store, entry = handles_store(url, charset)
        try:
            assert store.count(entry, ["omar"]) == 1 and store.count(entry, ["ömar", "OMAR"]) == 2
            assert [r["handle"] for batch in store.export(entry, ["omar"]) for r in batch] == ["omar"]
            # A retention sweep reads every spelling, though MariaDB's DISTINCT takes them for one.
            assert sorted(v for batch in store.identity_values(entry, 2) for v in batch) == sorted(SPELLINGS)

            assert store.purge(entry, ["omar"], batch_size=1) == 1

            assert store.count(entry, ["omar"]) == 0
            with make_engine(url).connect() as conn:
                left = sorted(conn.scalars(text("SELECT handle FROM handles")))
            assert left == sorted(SPELLINGS[1:])
        finally:
            store.dispose()


def test_a_batch_finds_the_persons_rows_through_the_stores_index(mariadb):
    with mariadb.database() as url:
        seed_platform_store(url)
        entry = TableEntry(store="platform", category="posts", identity="account", network="demo", table="posts",
                           column="author_id")
        store = SqlStore("platform", url, (entry,))
        deletes: list[tuple] = []

        @event.listens_for(store.engine, "before_cursor_execute")
        def keep(conn, cursor, statement, parameters, context, executemany):
            if statement.startswith("DELETE"):
                deletes.append((statement, parameters))

        assert store.purge(entry, ["1001"], batch_size=7) == 20
        assert len(deletes) == 3 and all(s.endswith(" LIMIT 7") for s, _ in deletes)
        with store.engine.connect() as conn:
            plan = conn.exec_driver_sql("EXPLAIN " + deletes[0][0], deletes[0][1]).mappings().one()
        store.dispose()
        assert plan["key"] == "ix_posts_author_id" and plan["type"] == "range", dict(plan)


def test_a_person_leaving_is_exported_purged_and_verified(app, client, make_person, login, csrf_post, worker,
                                                           sessions, platform_url):
    joined_person(client, make_person, login, csrf_post, account="1002")
    others = others_checksum(platform_url, "1002")
    document = json.loads(client.get("/export").get_data(as_text=True))
    assert document["complete"] is True
    [mine] = document["stores"]["platform"]["posts"]
    assert (mine["table"], mine["column"], mine["row_count"]) == ("posts", "author_id", 20)
    assert {p["author_id"] for p in mine["rows"]} == {"1002"}
    assert document["stores"]["platform"]["influence scores"][0]["rows"][0]["handle"] == "omar"

    status_path = submit_optout(client, csrf_post, "all")
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
    with sessions() as db:  # hold verify back, as a slow queue would, while the platform writes two more posts
        db.execute(update(ErasureStep).where(ErasureStep.request_id == request_id, ErasureStep.kind == "verify")
                   .values(not_before=utcnow() + dt.timedelta(hours=1)))
        db.commit()
    worker.drain()
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0
    engine = make_engine(platform_url)
    with engine.begin() as conn:
        conn.execute(insert(posts), [{"author_id": "1002", "body": "late", "created_at": utcnow()}] * 2)
    engine.dispose()
    with sessions() as db:
        db.execute(update(ErasureStep).where(ErasureStep.request_id == request_id, ErasureStep.kind == "verify")
                   .values(not_before=utcnow()))
        db.commit()
    worker.drain()

    with sessions() as db:
        assert db.get(OptOutRequest, request_id).status == "completed"
        claims = claims_of(db.scalar(select(Receipt).where(Receipt.request_id == request_id)))
    assert {"store": "platform", "category": "posts", "rows": 22} in claims["purged"]
    assert claims["residual_rows"] == 0
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0
    assert platform_rows(platform_url, "endorsements", "receiver_id", "1002") == 0
    assert others_checksum(platform_url, "1002") == others


def test_retention_sweeps_old_rows_and_data_that_came_back(make_app, config_files, make_person, login, csrf_post,
                                                           platform_url):
    path = config_files["datamap"]
    retained = 'column = "author_id"\nidentity = "account"\nnetwork = "demo"\naction = "delete"\n'
    path.write_text(path.read_text().replace(retained, retained + 'retention_days = 30\ntimestamp_column = '
                                                                  '"created_at"\n'))
    app = make_app()
    client = app.test_client()
    worker = Worker(app, threads=2)
    try:
        joined_person(client, make_person, login, csrf_post, account="1004")
        submit_optout(client, csrf_post, "all")
        worker.drain()
    finally:
        worker.close()
    now = utcnow()
    engine = make_engine(platform_url)
    with engine.begin() as conn:  # the platform ingests the person again, and keeps someone's old post
        conn.execute(insert(PLATFORM_TABLES["scores"]), {"handle": "tomas", "score": 50.0, "computed_at": now})
        conn.execute(insert(PLATFORM_TABLES["scores"]), {"handle": "Tomas", "score": 5.0, "computed_at": now})
        conn.execute(insert(posts), [{"author_id": "1004", "body": "again", "created_at": now},
                                     {"author_id": "2001", "body": "old", "created_at": now - dt.timedelta(days=40)}])
        cutoff = now - dt.timedelta(days=30)
        old = conn.scalar(select(func.count()).select_from(posts).where(posts.c.created_at < cutoff))
    engine.dispose()
    assert old > 1

    with db_session(app) as db:
        result = retention.sweep(db, context_from_app(app), now)

    assert result.status == "done", result.errors
    by_category = {e["category"]: e for e in result.entries}
    assert by_category["influence scores"]["reappeared"] == 1  # "Tomas" is someone else
    assert (by_category["posts"]["past_retention"], by_category["posts"]["reappeared"]) == (old, 1)
    assert platform_rows(platform_url, "posts", "author_id", "1004") == 0
    with make_engine(platform_url).connect() as conn:
        assert list(conn.scalars(text("SELECT handle FROM scores WHERE handle = 'tomas' COLLATE utf8mb4_bin"))) == []
        assert conn.scalar(text("SELECT count(*) FROM scores WHERE handle = 'Tomas' COLLATE utf8mb4_bin")) == 1
        assert conn.scalar(text("SELECT count(*) FROM posts WHERE created_at < :c"), {"c": cutoff}) == 0


def test_datamap_check_lists_the_databases_own_tables(mariadb):
    """`flask datamap check` on MariaDB: the tables of the store's own database, not another's on the server."""
    with mariadb.database("platform") as url, mariadb.database("elsewhere") as other:
        seed_platform_store(other)
        assert_a_changed_platform_is_seen(url)
