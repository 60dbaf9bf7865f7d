"""`make bench` prints its one table: every figure with a limit from the same run, a ratio and a verdict.

Only that it runs and what it prints: the figures themselves are for `make bench`, not for a test.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.settings import ROOT

FIGURES = ["consent checks/s", "opt-outs/s, 1 worker,", "opt-outs/s, 3 workers,", "3 worker processes against 1",
           "opt-outs/s, 1 worker with `flask worker`'s 16 threads",
           "with 121 rows each in an SQL store", "worker + database CPU per opt-out",
           "purge of one person", "offline receipt verifications/s", "inclusion proof build", "log appends/s",
           "receipts sequenced/s",
           "worker peak memory", "redis: purge of one person", "redis: peak memory", "s3: purge of one person",
           "s3: peak memory", "http: purge of one person", "http: Ownstory's peak allocations"]


def bench(**variables: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWNSTORY_BENCH")}
    return subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, env={**env, **variables},  # noqa: S603
                          capture_output=True, text=True, timeout=600)


def test_a_quick_run_prints_every_figure_against_its_limit():
    # The networks answer at once here: the latency model only lengthens a run.
    done = bench(OWNSTORY_BENCH_SCALE="0.01", OWNSTORY_BENCH_NETWORK_MS="0")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    database = "postgresql" if os.environ.get("OWNSTORY_TEST_DATABASE_URL", "").strip() else "sqlite"
    assert lines[0].startswith("Ownstory bench") and database in lines[0] and "networks answering in 0 ms" in lines[0]
    assert lines[1].split()[:4] == ["figure", "measured", "limit,", "same"]
    rows = lines[3:3 + len(FIGURES)]
    for figure, row in zip(FIGURES, rows, strict=True):
        assert figure in row, (figure, row)
        assert "FAILED" not in row, row
    with_goals = [r for r in rows if r.rstrip().endswith(("yes", "NO"))]
    # six goals of issue 6, issue 12's two for each of redis, s3 and http, three of issue 17's
    assert len(with_goals) == 15
    # what bounds issue 17's opt-out rate: the machine's CPU, spent per opt-out by every process on it
    assert any("% busy while the worker ran" in line and "ms of CPU per opt-out" in line for line in lines), lines


@pytest.mark.parametrize("variable, value", [("OWNSTORY_BENCH_SCALE", "abc"), ("OWNSTORY_BENCH_SCALE", "0"),
                                             ("OWNSTORY_BENCH_NETWORK_MS", "fast"),
                                             ("OWNSTORY_BENCH_NETWORK_MS", "-5"), ("OWNSTORY_BENCH_NETWORK_MS", "nan")])
def test_a_bad_setting_is_named_before_anything_runs(variable, value):
    done = bench(**{variable: value})
    assert done.returncode == 1
    assert variable in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
