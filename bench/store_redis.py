"""Redis's figures: purging one person's 100 keys as the database grows a hundredfold, and the peak memory of
a process purging a person with 100,000 keys.

SCAN visits every key of the database, whatever its pattern (Redis keeps no index of key names), so a
wildcard pattern's purge without an index grows with the database. The figure is the wildcard's with the
per-person index the data map names (feed:{identity}:* listed in idx:feed:{identity}, the shape that holds
many keys a person, as a platform would keep it); `named` gives a pattern without wildcard for the note.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.memory import peak_rss
from bench.redis_server import RedisServer
from erasure.stores.redis_kind import RedisStore

ITEMS_EACH = 100  # keys per person
SAMPLES = 15  # people purged per database size and pattern; the median counts
WILDCARD, NAMED = "feed:{identity}:*", "feed:{identity}:0"
INDEX = "idx:feed:{identity}"  # the set per person that lists the wildcard's keys
BIG = "big"  # the person with many keys, in the memory figure
# One Lua call writes a stretch of the keys, each with its name in its person's index: a million in seconds,
# where a million SETs from here take a minute. People are <prefix><n>, n-th of `each` keys, or all <prefix>.
FILL = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local person = ARGV[3]
  if ARGV[5] == '' then person = person .. math.floor(i / tonumber(ARGV[4])) end
  local key = 'feed:' .. person .. ':' .. (i % tonumber(ARGV[4]))
  redis.call('SET', key, 'a post')
  redis.call('SADD', 'idx:feed:' .. person, key)
end
"""


@dataclass(frozen=True)
class PurgeTimes:
    large: float  # median seconds at the large database, wildcard pattern with its index
    small: float  # the same at the small one
    named_large: float  # a pattern without wildcard (one named key a person), large database
    named_small: float


def purge_times(small: int, large: int) -> PurgeTimes:
    """Median seconds to purge one person's 100 keys (found through their index), and one named key, from
    databases of `small` and `large` keys, each person's keys named feed:p<n>:<i> and listed in idx:feed:p<n>.
    The two databases are two servers, purged from in turn: the machine's other work then slows both alike,
    where measuring one size after the other would put a busy spell on one side of the ratio only."""
    with tempfile.TemporaryDirectory(prefix="ownstory-bench-redis-") as folder:
        (Path(folder) / "small").mkdir()
        (Path(folder) / "large").mkdir()
        with RedisServer(Path(folder) / "small") as at_small, RedisServer(Path(folder) / "large") as at_large:
            _fill(at_small, small, "p", ITEMS_EACH)
            _fill(at_large, large, "p", ITEMS_EACH)
            times = _times([at_small, at_large], small // ITEMS_EACH)
    (wild_small, named_small), (wild_large, named_large) = times
    return PurgeTimes(wild_large, wild_small, named_large, named_small)


def worker_peaks(items: int) -> tuple[int, int]:
    """(peak before, peak after) in bytes of a process that counts, purges and counts again as a purge step
    does: first a person with 100 keys, then one with `items` keys, in a database twice that size."""
    with tempfile.TemporaryDirectory(prefix="ownstory-bench-redis-") as folder, RedisServer(Path(folder)) as server:
        _fill(server, items, "p", ITEMS_EACH)
        _fill(server, items, BIG, items, one_person=True)
        done = subprocess.run([sys.executable, "-m", "bench.store_redis", server.url, str(items)],  # noqa: S603
                              capture_output=True, text=True, timeout=max(300, items / 500), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the purging process failed: {done.stderr[-2000:]}")
    before, after = (int(n) for n in done.stdout.split())
    return before, after


def _times(servers: list[RedisServer], people: int) -> list[tuple[float, float]]:
    """(wildcard, named) median seconds at each server, the same people purged from each in turn."""
    picks = [f"p{i}" for i in range(0, people, max(1, people // (2 * SAMPLES + 1)))][:2 * SAMPLES]  # spread out
    times: list[dict[str, list[float]]] = [{WILDCARD: [], NAMED: []} for _ in servers]
    with ExitStack() as stack:
        stores = [stack.enter_context(_store(server.url, WILDCARD, NAMED, index=True)) for server in servers]
        for person, pattern, wanted in [*((p, WILDCARD, ITEMS_EACH) for p in picks[::2]),
                                        *((p, NAMED, 1) for p in picks[1::2])]:
            for store, taken in zip(stores, times, strict=True):
                entry = next(e for e in store.entries if store.describe(e)["pattern"] == pattern)
                start = time.perf_counter()
                purged = store.purge(entry, [person])
                taken[pattern].append(time.perf_counter() - start)
                if purged != wanted:
                    raise RuntimeError(f"purged {purged} keys of {person} with {pattern}, not {wanted}")
    return [(statistics.median(taken[WILDCARD]), statistics.median(taken[NAMED])) for taken in times]


@contextmanager
def _store(url: str, *patterns: str, index: bool) -> Iterator[RedisStore]:
    """A store with an entry per pattern; with `index`, a wildcard's keys are found through INDEX."""
    raw = {"name": "cache", "kind": "redis", "url_env": "BENCH_REDIS_URL",
           "keys": [{"pattern": p, "category": "feed", "identity": "subject",
                     **({"index": INDEX} if index and "*" in p else {})} for p in patterns]}
    store = RedisStore.load("(bench)", "stores.cache", raw, None, {"BENCH_REDIS_URL": url})
    try:
        yield store
    finally:
        store.dispose()


def _fill(server: RedisServer, keys: int, prefix: str, each: int, one_person: bool = False,
          stretch: int = 100_000) -> None:
    client = server.client()
    try:
        fill = client.register_script(FILL)
        for first in range(0, keys, stretch):
            fill(args=[first, min(first + stretch, keys) - 1, prefix, each, "one" if one_person else ""])
    finally:
        client.close()


def _purging_process(url: str, items: int) -> None:
    """The child of worker_peaks: prints its peak before and after the big purge. It holds the app's
    modules (bench.memory imports them), as a worker does."""
    with _store(url, WILDCARD, index=True) as store:
        entry = store.entries[0]
        for person, wanted in (("p0", ITEMS_EACH), (BIG, items)):
            if store.count(entry, [person]) != wanted or store.purge(entry, [person]) != wanted:
                raise SystemExit(f"{person}'s keys were not all found and purged")
            if store.count(entry, [person]) != 0:
                raise SystemExit(f"{person}'s keys are not all gone")
            print(peak_rss(os.getpid()), flush=True)


if __name__ == "__main__":
    _purging_process(sys.argv[1], int(sys.argv[2]))
