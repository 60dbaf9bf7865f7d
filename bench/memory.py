"""Peak memory (VmHWM) of a worker process that purges one person with a million platform rows.

The limit is the same process's peak before: started, and one ordinary opt-out (100 rows) done.
A purge deletes in committed batches of 1,000 rows, so the peak should not grow with the rows.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy import String, cast, func, insert, literal, select

from app.db import make_engine
from bench import optouts
from bench.world import World, stop
from demo import platform
from erasure.context import context_from_app


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes, as the kernel counts it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc: peak memory needs Linux")


def worker_peaks(app: Flask, world: World, rows: int) -> tuple[int, int]:
    """(peak before, peak after purging a person with `rows` posts) of one worker process, in bytes."""
    ordinary, big = optouts.cohort(8, 2)
    optouts.seed(world, [ordinary])
    optouts.seed_tokens(world, [big])
    optouts.seed_platform(world.platform_url, [big], posts=0)
    _fill_posts(world.platform_url, big.account, rows)
    ordinary_id, big_id = optouts.sign_up(app, [ordinary, big])
    sessions, ctx = app.extensions["ownstory_db"]["sessionmaker"], context_from_app(app)
    worker = optouts._start_worker(world)
    try:
        if worker.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"a worker did not start; see {world.folder}/worker.log")
        optouts._wait_until_done(sessions, [optouts._submit(sessions, ctx, ordinary_id)], timeout=120)
        before = peak_rss(worker.pid)
        optouts._wait_until_done(sessions, [optouts._submit(sessions, ctx, big_id)],
                                 timeout=max(300.0, rows / 1000))
        return before, peak_rss(worker.pid)
    finally:
        stop(worker)


def _fill_posts(platform_url: str, account: str, rows: int) -> None:
    """One INSERT ... SELECT over a counting CTE: a million posts in seconds."""
    engine = make_engine(platform_url)
    n = select(literal(0).label("i")).cte("n", recursive=True)
    n = n.union_all(select(n.c.i + 1).where(n.c.i < rows - 1))
    source = select(literal(account), literal("post ") + cast(n.c.i, String), func.current_timestamp())
    with engine.begin() as conn:
        conn.execute(insert(platform.posts).from_select(["author_id", "body", "created_at"], source))
        conn.exec_driver_sql("ANALYZE posts")
    engine.dispose()
