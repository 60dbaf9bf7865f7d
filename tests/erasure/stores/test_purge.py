"""Purge: only the person's rows go, in committed batches that survive crashes, with bounded memory."""
from __future__ import annotations

import hashlib
import os
import sqlite3
import time
import traceback
import tracemalloc
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, func, select, text

from app.db import make_engine
from demo.platform import endorsements, metadata, posts
from erasure.stores.kinds import StoreMisconfigured, StoreUnavailable
from erasure.stores.purge import count_entries, count_entry, purge_entry, row_key
from erasure.stores.sql import TableEntry

TEST_PG = os.environ.get("OWNSTORY_TEST_DATABASE_URL", "").strip()
# MariaDB is started by the tests themselves (helpers_mariadb.py), or skipped where it is not installed.
BACKENDS = ["sqlite"] + (["postgresql"] if TEST_PG else []) + ["mariadb"]
WHEN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

def table_entry(table: str, category: str, column: str, identity: str, network: str | None, action: str,
                columns: tuple[str, ...] = ()) -> TableEntry:
    return TableEntry(store="platform", category=category, identity=identity, network=network, table=table,
                      column=column, action=action, columns=columns)


POSTS = table_entry("posts", "posts", "author_id", "account", "demo", "delete")
GIVEN = table_entry("endorsements", "endorsements", "giver_id", "account", "demo", "delete")
RECEIVED = table_entry("endorsements", "endorsements received", "receiver_id", "account", "demo", "nullify",
                       ("receiver_id",))


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """The demo platform's tables, empty: in a SQLite file, or in a throwaway PostgreSQL schema or MariaDB database."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
        metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    if request.param == "mariadb":
        with request.getfixturevalue("mariadb").database("purge") as url:
            engine = make_engine(url, autocommit=True)  # as the data map makes a store's engine
            metadata.create_all(engine)
            yield engine
            engine.dispose()
        return
    schema = f"purge_{uuid.uuid4().hex[:12]}"
    admin = make_engine(TEST_PG)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(TEST_PG, connect_args={"options": f"-csearch_path={schema}", "application_name": schema})
    metadata.create_all(engine)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def add_posts(engine, counts: dict[str, int]) -> None:
    rows = [{"author_id": a, "body": f"post {i} by {a}", "created_at": WHEN}
            for a, n in counts.items() for i in range(n)]
    with engine.begin() as conn:
        conn.execute(posts.insert(), rows)


def add_endorsements(engine, pairs: list[tuple[str, str]]) -> None:
    with engine.begin() as conn:
        conn.execute(endorsements.insert(), [{"giver_id": g, "receiver_id": r, "topic": "cycling"} for g, r in pairs])


def rows_of(engine, table) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(select(table)))


def checksum(rows: list[tuple]) -> str:
    return hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()


def test_only_the_persons_rows_go(store):
    add_posts(store, {"1001": 40, "1002": 25, "2001": 30, "10011": 5})
    others = [r for r in rows_of(store, posts) if r[1] != "1001"]
    assert count_entry(store, POSTS, ["1001"]) == 40

    assert purge_entry(store, POSTS, ["1001"]) == 40

    assert count_entry(store, POSTS, ["1001"]) == 0
    assert checksum(rows_of(store, posts)) == checksum(others)


def test_nullify_keeps_the_rows_and_clears_only_the_persons_column(store):
    add_endorsements(store, [("2001", "1001"), ("1001", "2001"), ("2002", "1001"), ("2002", "2003"), ("2003", "2001")])
    before = rows_of(store, endorsements)
    expected = [(i, giver, None if receiver == "1001" else receiver, topic) for i, giver, receiver, topic in before]

    assert purge_entry(store, RECEIVED, ["1001"]) == 2

    assert rows_of(store, endorsements) == expected
    assert count_entry(store, RECEIVED, ["1001"]) == 0
    # The same table again, matched by giver: the endorsement the person gave goes.
    assert purge_entry(store, GIVEN, ["1001"]) == 1
    assert checksum(rows_of(store, endorsements)) == checksum([r for r in expected if r[1] != "1001"])


def test_batches_commit_one_by_one_and_a_rerun_purges_nothing(store):
    add_posts(store, {"1001": 100, "2001": 10})
    batches: list[int] = []

    assert purge_entry(store, POSTS, ["1001"], batch_size=7, on_batch=batches.append) == 100

    assert batches == [7] * 14 + [2]
    assert purge_entry(store, POSTS, ["1001"], batch_size=7, on_batch=batches.append) == 0
    assert len(batches) == 15
    assert count_entry(store, POSTS, ["2001"]) == 10


def statements_on(engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: seen.append(statement))
    return seen


def test_a_short_batch_is_the_last_one(store):
    """No empty DELETE to prove a purge is done: a batch that took fewer rows than it could took them all."""
    add_posts(store, {"1001": 100, "1002": 98})
    seen = statements_on(store)
    purge_entry(store, POSTS, ["1001"], batch_size=7)
    assert sum(s.startswith("DELETE") for s in seen) == 15  # 14 of 7 rows, 1 of 2
    seen.clear()
    purge_entry(store, POSTS, ["1002"], batch_size=7)
    assert sum(s.startswith("DELETE") for s in seen) == 15  # 14 of 7 rows, then one that finds none
    assert count_entry(store, POSTS, ["1001", "1002"]) == 0


def test_several_entries_are_counted_in_one_statement(store):
    add_posts(store, {"1001": 4, "2001": 3})
    add_endorsements(store, [("1001", "2001"), ("2001", "1001"), ("2002", "1001"), ("2002", "2003")])
    wanted = [(POSTS, ["1001"]), (GIVEN, ["1001"]), (RECEIVED, ["1001"]), (POSTS, [f"{i:05d}" for i in range(1200)])]
    count_entries(store, wanted)  # the tables' shapes are read once, before counting
    seen = statements_on(store)
    assert count_entries(store, wanted) == [count_entry(store, e, v) for e, v in wanted] == [4, 1, 2, 0]
    counts = [s for s in seen if "count(" in s.lower()]
    assert len(counts) == 1 + 3 + 3  # one for all four; then count_entry's: one each, three for 1,200 values


def test_a_count_of_several_entries_names_the_entry_the_store_refuses(store):
    add_posts(store, {"1001": 4})
    missing = table_entry("gone", "gone", "account_id", "account", "demo", "delete")
    with pytest.raises(StoreMisconfigured, match="'gone'"):
        count_entries(store, [(POSTS, ["1001"]), (missing, ["1001"])])


def test_several_identity_values_and_long_value_lists(store):
    # 1,200 values make three IN lists; the person's ids land in each of them.
    values = [f"{i:05d}" for i in range(1200)]
    add_posts(store, {"00100": 3, "01000": 4, "01150": 5, "99999": 6, "0100": 2})
    others = [r for r in rows_of(store, posts) if r[1] in ("99999", "0100")]

    assert purge_entry(store, POSTS, values, batch_size=2) == 12

    assert count_entry(store, POSTS, values) == 0
    assert checksum(rows_of(store, posts)) == checksum(others)
    assert purge_entry(store, POSTS, []) == 0


class Crash(Exception):
    pass


def test_a_crash_mid_way_keeps_committed_batches_and_a_rerun_finishes(store):
    add_posts(store, {"1001": 100, "2001": 30})
    others = [r for r in rows_of(store, posts) if r[1] != "1001"]
    seen: list[int] = []

    def crash_after_three(rows: int) -> None:
        seen.append(rows)
        if len(seen) == 3:
            raise Crash

    with pytest.raises(Crash):
        purge_entry(store, POSTS, ["1001"], batch_size=7, on_batch=crash_after_three)

    assert count_entry(store, POSTS, ["1001"]) == 100 - 21
    assert purge_entry(store, POSTS, ["1001"], batch_size=7) == 79
    assert sum(seen) + 79 == 100
    assert checksum(rows_of(store, posts)) == checksum(others)


def test_a_store_failing_mid_way_is_unavailable_and_a_retry_finishes(store, request):
    add_posts(store, {"1001": 100, "2001": 30})
    others = [r for r in rows_of(store, posts) if r[1] != "1001"]
    seen: list[int] = []
    if store.dialect.name == "sqlite":
        # Another process takes the write lock; this engine gives up waiting quickly.
        engine = create_engine(store.url, connect_args={"timeout": 0.1})
        locker = sqlite3.connect(store.url.database, isolation_level=None)

        def fail() -> None:
            locker.execute("BEGIN EXCLUSIVE")
    elif store.dialect.name == "mysql":
        engine = store

        def fail() -> None:  # the server cuts the purge's connection between two batches
            assert request.getfixturevalue("mariadb").kill_connections(store.url.database) >= 1
    else:
        engine = store
        with store.connect() as conn:
            name = conn.scalar(text("SHOW application_name"))

        def fail() -> None:
            admin = make_engine(TEST_PG)
            with admin.begin() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
                             {"n": name})
            admin.dispose()

    def fail_after_three(rows: int) -> None:
        seen.append(rows)
        if len(seen) == 3:
            fail()

    with pytest.raises(StoreUnavailable) as err:
        purge_entry(engine, POSTS, ["1001"], batch_size=7, on_batch=fail_after_three)

    assert err.value.store == "platform"
    if store.dialect.name == "sqlite":
        locker.execute("ROLLBACK")
        locker.close()
        engine.dispose()
    assert count_entry(store, POSTS, ["1001"]) == 79
    assert purge_entry(store, POSTS, ["1001"], batch_size=7) == 79
    assert checksum(rows_of(store, posts)) == checksum(others)


@pytest.mark.parametrize("url", [
    "sqlite:///{tmp}/no/such/folder/platform.db",
    "postgresql+psycopg://ownstory:hunter2-secret@127.0.0.1:1/platform?connect_timeout=2",
    "mysql+pymysql://ownstory:hunter2-secret@127.0.0.1:1/platform?connect_timeout=2",
])
def test_an_unreachable_store_is_unavailable_and_says_no_url(tmp_path, url):
    url = url.format(tmp=tmp_path)
    engine = make_engine(url)
    person = ["acct-7731"]
    try:
        for attempt in (lambda: purge_entry(engine, POSTS, person), lambda: count_entry(engine, POSTS, person)):
            with pytest.raises(StoreUnavailable) as err:
                attempt()
            said = "".join(traceback.format_exception(err.value))  # what a worker's log would show
            assert "platform" in str(err.value)
            for secret in ("hunter2", "127.0.0.1", str(tmp_path), "acct-7731"):
                assert secret not in said
    finally:
        engine.dispose()


@pytest.mark.parametrize("entry, problem", [
    (table_entry("timeline", "posts", "author_id", "account", "demo", "delete"), "no such table"),
    (table_entry("posts", "posts", "writer_id", "account", "demo", "delete"), "no column 'writer_id'"),
    (table_entry("endorsements", "e", "giver_id", "account", "demo", "nullify", ("giver_id",)),
     "NOT NULL"),
    (table_entry("endorsements", "e", "giver_id", "account", "demo", "nullify", ("receiver_id",)),
     "nullify must set 'giver_id' to NULL"),
])
def test_a_map_that_does_not_fit_the_store_is_misconfigured(store, entry, problem):
    add_endorsements(store, [("1001", "2001")])
    add_posts(store, {"1001": 3})
    before = rows_of(store, endorsements), rows_of(store, posts)

    with pytest.raises(StoreMisconfigured, match=problem) as err:
        purge_entry(store, entry, ["1001"])

    assert (err.value.store, err.value.table) == ("platform", entry.table)
    assert (rows_of(store, endorsements), rows_of(store, posts)) == before


def test_a_table_the_platform_renames_is_looked_at_again_once_it_is_back(store):
    """Statements are built once per entry and reused; a store that changes under them is read again."""
    add_posts(store, {"1001": 3, "1002": 2})
    assert count_entries(store, [(POSTS, ["1001"]), (GIVEN, ["1001"])]) == [3, 0]
    assert purge_entry(store, POSTS, ["1001"]) == 3
    with store.begin() as conn:
        conn.execute(text("ALTER TABLE posts RENAME TO posts_old"))
    for attempt in (lambda: count_entry(store, POSTS, ["1002"]), lambda: purge_entry(store, POSTS, ["1002"])):
        with pytest.raises((StoreMisconfigured, StoreUnavailable)):  # SQLite's error says only that it failed
            attempt()
    with store.begin() as conn:
        conn.execute(text("ALTER TABLE posts_old RENAME TO posts"))

    assert count_entries(store, [(POSTS, ["1002"]), (GIVEN, ["1002"])]) == [2, 0]
    assert purge_entry(store, POSTS, ["1002"]) == 2
    assert count_entry(store, POSTS, ["1001", "1002"]) == 0


def test_rows_that_other_rows_still_point_at_stop_the_purge_without_half_a_batch(store):
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE replies (id INTEGER PRIMARY KEY, post_id INTEGER REFERENCES posts (id))"))
    add_posts(store, {"1001": 5})
    with store.begin() as conn:
        first = conn.scalar(select(func.min(posts.c.id)))
        conn.execute(text("INSERT INTO replies (id, post_id) VALUES (1, :p)"), {"p": first})

    with pytest.raises(StoreMisconfigured, match="refused the change") as err:
        purge_entry(store, POSTS, ["1001"], batch_size=10)

    assert "1001" not in str(err.value)
    assert count_entry(store, POSTS, ["1001"]) == 5


@pytest.mark.parametrize("ddl, key", [
    ("CREATE TABLE legacy_log (account_id VARCHAR(40), line VARCHAR(200))", None),
    ("CREATE TABLE legacy_log (account_id VARCHAR(40), line VARCHAR(200), PRIMARY KEY (account_id, line))",
     ("account_id", "line")),
])
def test_tables_without_a_single_primary_key_are_purged_too(store, ddl, key):
    entry = table_entry("legacy_log", "logs", "account_id", "account", "demo", "delete")
    with store.begin() as conn:
        conn.execute(text(ddl))
        conn.execute(text("CREATE INDEX ix_legacy_log_account ON legacy_log (account_id)"))
        for i in range(10):
            conn.execute(text("INSERT INTO legacy_log VALUES ('1001', :l), ('2001', :l)"), {"l": f"line {i}"})

    batches: list[int] = []
    assert purge_entry(store, entry, ["1001"], batch_size=3, on_batch=batches.append) == 10

    assert batches == [3, 3, 3, 1]
    if key is None and store.dialect.name == "mysql":  # no row address: purged all the same, but not paged
        with pytest.raises(StoreMisconfigured, match="no primary key to page by on mysql"):
            row_key(store, entry)
    else:
        assert row_key(store, entry) == (key or ({"sqlite": "rowid", "postgresql": "ctid"}[store.dialect.name],))
    with store.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM legacy_log WHERE account_id = '2001'")) == 10


def test_batches_find_the_persons_rows_through_the_stores_index(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    metadata.create_all(engine)
    deletes: list[tuple] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("DELETE"):
            deletes.append((statement, parameters))

    purge_entry(engine, POSTS, ["1001"])
    with engine.connect() as conn:
        plan = " / ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + deletes[0][0], deletes[0][1]))
    engine.dispose()
    assert "INDEX ix_posts_author_id" in plan and "SCAN" not in plan, plan


@pytest.mark.skipif(not TEST_PG, reason="PostgreSQL's own plan: set OWNSTORY_TEST_DATABASE_URL (SQLite's is above)")
@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_on_postgresql_a_persons_purge_reads_their_rows_not_the_whole_table(store):
    # Many rows of one person: PostgreSQL would hash the keys a batch picked and scan every row of the table
    # for them, so each purge would cost as much as the platform is big.
    add_posts(store, {"1001": 300, **{str(2000 + n): 100 for n in range(200)}})
    with store.connect() as conn:
        conn.exec_driver_sql("ANALYZE posts")
    deletes: list[tuple] = []

    @event.listens_for(store, "before_cursor_execute")
    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("DELETE"):
            deletes.append((statement, parameters))

    assert purge_entry(store, POSTS, ["1002"]) == 0  # a person with no rows: the statement, run on nothing
    event.remove(store, "before_cursor_execute", keep)
    statement, parameters = deletes[0]
    his = {name: "1001" if value == "1002" else value for name, value in parameters.items()}
    with store.connect() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, his))
    assert "Seq Scan on posts" not in plan, plan
    assert purge_entry(store, POSTS, ["1001"]) == 300 and count_entry(store, POSTS, ["2000"]) == 100


def test_memory_stays_bounded_with_200000_rows(store):
    with store.begin() as conn:
        if store.dialect.name == "mysql":  # MariaDB stops a recursive query after 1,000 rounds by default
            conn.execute(text("SET SESSION max_recursive_iterations = 200000"))
        conn.execute(text(
            "INSERT INTO posts (author_id, body, created_at) "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
            "SELECT '1001', 'a post long enough to matter if it were ever held in memory', CURRENT_TIMESTAMP FROM n"
        ))
    add_posts(store, {"2001": 50})
    started = time.monotonic()
    tracemalloc.start()
    try:
        assert purge_entry(store, POSTS, ["1001"]) == 200_000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Holding 200,000 ids alone would take several MB; a batch of 1,000 stays far below that.
    assert peak < 2_000_000, f"peak {peak:,} bytes"
    assert time.monotonic() - started < 10
    assert count_entry(store, POSTS, ["2001"]) == 50


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    authors=st.lists(st.sampled_from(["1001", "1002", "2001", "2002", "10010", ""]), max_size=30),
    values=st.lists(st.sampled_from(["1001", "1002", "2001", "3001", ""]), max_size=4),
    batch_size=st.integers(1, 5),
)
def test_purge_removes_exactly_the_matching_rows(store, authors, values, batch_size):
    with store.begin() as conn:
        conn.execute(posts.delete())
    if authors:
        with store.begin() as conn:
            conn.execute(posts.insert(), [{"author_id": a, "body": "b", "created_at": WHEN} for a in authors])
    before = rows_of(store, posts)
    wanted = set(values) - {""}  # an empty identity matches nobody

    removed = purge_entry(store, POSTS, values, batch_size=batch_size)

    assert removed == sum(1 for a in authors if a in wanted)
    assert rows_of(store, posts) == [r for r in before if r[1] not in wanted]
    with store.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(posts)) == len(authors) - removed
