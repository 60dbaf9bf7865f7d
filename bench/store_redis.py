"""Redis's figures: purging one person's 100 keys as the database grows a hundredfold, and the peak memory of
a process purging a person with 100,000 keys.

SCAN visits every key of the database, whatever its pattern (Redis keeps no index of key names), so a
wildcard pattern's purge grows with the database; a pattern without one names its key and does not. The
figure is the wildcard's (feed:{identity}:*, the shape that holds many keys a person); `named` gives the
other's for the note.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.memory import peak_rss
from bench.redis_server import RedisServer
from erasure.stores.redis_kind import RedisStore

ITEMS_EACH = 100  # keys per person
SAMPLES = 9  # people purged per database size; the median counts
WILDCARD, NAMED = "feed:{identity}:*", "feed:{identity}:0"
BIG = "big"  # the person with many keys, in the memory figure
# One Lua call writes a stretch of the keys: a million in seconds, where a million SETs from here take a minute.
FILL = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  redis.call('SET', ARGV[3] .. math.floor(i / tonumber(ARGV[4])) .. ':' .. (i % tonumber(ARGV[4])), 'a post')
end
"""


@dataclass(frozen=True)
class PurgeTimes:
    large: float  # median seconds at the large database, wildcard pattern
    small: float  # the same at the small one
    named_large: float  # a pattern without wildcard (one named key a person), large database
    named_small: float


def purge_times(small: int, large: int) -> PurgeTimes:
    """Median seconds to purge one person's 100 keys (and one named key) from databases of `small` and
    `large` keys, each person's keys named feed:p<n>:<i>."""
    with tempfile.TemporaryDirectory(prefix="ownstory-bench-redis-") as folder, RedisServer(Path(folder)) as server:
        at_small = _medians(server, small)
        at_large = _medians(server, large)
    return PurgeTimes(at_large[0], at_small[0], at_large[1], at_small[1])


def worker_peaks(items: int) -> tuple[int, int]:
    """(peak before, peak after) in bytes of a process that counts, purges and counts again as a purge step
    does: first a person with 100 keys, then one with `items` keys, in a database twice that size."""
    with tempfile.TemporaryDirectory(prefix="ownstory-bench-redis-") as folder, RedisServer(Path(folder)) as server:
        _fill(server, items, "feed:p", ITEMS_EACH)
        _fill(server, items, f"feed:{BIG}:", items)
        done = subprocess.run([sys.executable, "-m", "bench.store_redis", server.url, str(items)],  # noqa: S603
                              capture_output=True, text=True, timeout=max(300, items / 500), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the purging process failed: {done.stderr[-2000:]}")
    before, after = (int(n) for n in done.stdout.split())
    return before, after


def _medians(server: RedisServer, keys: int) -> tuple[float, float]:
    """(wildcard, named) median seconds at a database of `keys` keys."""
    server.client().flushall()
    _fill(server, keys, "feed:p", ITEMS_EACH)
    people = keys // ITEMS_EACH
    picks = [f"p{i}" for i in range(0, people, max(1, people // (2 * SAMPLES + 1)))][:2 * SAMPLES]  # spread out
    wildcard, named = [], []
    with _store(server.url, WILDCARD, NAMED) as store:
        by_pattern = {store.describe(entry)["pattern"]: entry for entry in store.entries}
        for person, pattern, times, wanted in [*((p, WILDCARD, wildcard, ITEMS_EACH) for p in picks[::2]),
                                                *((p, NAMED, named, 1) for p in picks[1::2])]:
            start = time.perf_counter()
            purged = store.purge(by_pattern[pattern], [person])
            times.append(time.perf_counter() - start)
            if purged != wanted:
                raise RuntimeError(f"purged {purged} keys of {person} with {pattern}, not {wanted}")
    return statistics.median(wildcard), statistics.median(named)


@contextmanager
def _store(url: str, *patterns: str) -> Iterator[RedisStore]:
    raw = {"name": "cache", "kind": "redis", "url_env": "BENCH_REDIS_URL",
           "keys": [{"pattern": p, "category": "feed", "identity": "subject"} for p in patterns]}
    store = RedisStore.load("(bench)", "stores.cache", raw, None, {"BENCH_REDIS_URL": url})
    try:
        yield store
    finally:
        store.dispose()


def _fill(server: RedisServer, keys: int, prefix: str, each: int, stretch: int = 100_000) -> None:
    client = server.client()
    try:
        fill = client.register_script(FILL)
        for first in range(0, keys, stretch):
            fill(args=[first, min(first + stretch, keys) - 1, prefix, each])
    finally:
        client.close()


def _purging_process(url: str, items: int) -> None:
    """The child of worker_peaks: prints its peak before and after the big purge. It holds the app's
    modules (bench.memory imports them), as a worker does."""
    with _store(url, WILDCARD) as store:
        entry = store.entries[0]
        for person, wanted in (("p0", ITEMS_EACH), (BIG, items)):
            if store.count(entry, [person]) != wanted or store.purge(entry, [person]) != wanted:
                raise SystemExit(f"{person}'s keys were not all found and purged")
            if store.count(entry, [person]) != 0:
                raise SystemExit(f"{person}'s keys are not all gone")
            print(peak_rss(os.getpid()), flush=True)


if __name__ == "__main__":
    _purging_process(sys.argv[1], int(sys.argv[2]))
