"""Purging one person when the platform table holds 100 times more rows: indexed, it should cost about the same."""
from __future__ import annotations

import statistics
import time

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, cast, func, insert, literal, select

from app.db import make_engine
from erasure.stores.sql import SqlStore, TableEntry

ROWS_EACH = 100  # rows per person
SAMPLES = 15  # people purged per table size, one of each size in turn; the median counts


def purge_times(platform_url: str, small: int, large: int) -> tuple[float, float]:
    """Median seconds for the sql kind to purge one person's rows from a posts table of `small` rows and from
    one of `large` rows. The two sizes take turns, so a moment the machine is busy weighs on both alike (each
    size measured apart, one slow second could tip the ratio of two sub-millisecond medians)."""
    engine = make_engine(platform_url)
    tables = [_posts_table(rows) for rows in (small, large)]
    stores = [SqlStore("platform", platform_url, (entry,)) for _, entry in tables]
    try:
        picks = []
        for (table, entry), store, rows in zip(tables, stores, (small, large), strict=True):
            table.create(engine)
            _fill(engine, table, rows)
            people = rows // ROWS_EACH
            chosen = [f"p{i}" for i in range(0, people, max(1, people // (SAMPLES + 1)))][:SAMPLES + 1]  # spread
            store.purge(entry, [chosen.pop()])  # warm-up: the table's shape is reflected once, then cached
            picks.append(chosen)
        times: tuple[list[float], list[float]] = ([], [])
        for pair in zip(*picks, strict=True):
            for (_, entry), store, person, taken in zip(tables, stores, pair, times, strict=True):
                start = time.perf_counter()
                purged = store.purge(entry, [person])
                taken.append(time.perf_counter() - start)
                if purged != ROWS_EACH:
                    raise RuntimeError(f"purged {purged} rows of {person}, not {ROWS_EACH}")
        return statistics.median(times[0]), statistics.median(times[1])
    finally:
        for store in stores:
            store.dispose()
        for table, _ in tables:
            table.drop(engine, checkfirst=True)
        engine.dispose()


def _posts_table(rows: int) -> tuple[Table, TableEntry]:
    table = Table(f"bench_posts_{rows}", MetaData(),
                  Column("id", Integer, primary_key=True),
                  Column("author_id", String(40), nullable=False, index=True),
                  Column("body", Text, nullable=False),
                  Column("created_at", DateTime(timezone=True), nullable=False))
    return table, TableEntry(store="platform", category="posts", identity="account", network="demo",
                             table=table.name, column="author_id")


def _fill(engine, table: Table, rows: int) -> None:
    """One INSERT ... SELECT over a counting CTE: a million rows in seconds, on SQLite and PostgreSQL alike."""
    n = select(literal(0).label("i")).cte("n", recursive=True)
    n = n.union_all(select(n.c.i + 1).where(n.c.i < rows - 1))
    person = literal("p") + cast(n.c.i // ROWS_EACH, String)
    source = select(person, literal("a post"), func.current_timestamp())
    with engine.begin() as conn:
        conn.execute(insert(table).from_select(["author_id", "body", "created_at"], source))
        conn.exec_driver_sql(f"ANALYZE {table.name}")  # a real table has statistics; the planner needs them
