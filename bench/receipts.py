"""Receipts and the log: offline verification against raw Ed25519, proofs at 1,000,000 leaves, appends."""
from __future__ import annotations

import hashlib
import random
import statistics
import time

from sqlalchemy import delete, insert, text
from sqlalchemy.orm import sessionmaker

from app.db import make_engine, utcnow
from app.security import Vault
from bench.verification import benchmark
from erasure.models import Checkpoint, LogNode
from erasure.receipts import tlog
from erasure.verifier import merkle

SAMPLES = 200
ORIGIN = "bench.example/ownstory/receipts"


def verification() -> dict:
    """python -m erasure.verify's own code, receipts per second against raw Ed25519 verifications."""
    return benchmark(seconds=2.0)


def _fill(engine, leaves: int) -> None:
    """Every complete subtree of a log of `leaves` leaves, computed here and inserted in bulk."""
    with engine.begin() as conn:
        conn.execute(delete(LogNode))
        conn.execute(delete(Checkpoint))
        level = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(leaves)]
        depth = 0
        while level:
            rows = [{"level": depth, "index": i, "hash": h} for i, h in enumerate(level)]
            for start in range(0, len(rows), 20_000):
                conn.execute(insert(LogNode), rows[start:start + 20_000])
            level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            depth += 1
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE log_nodes"))


def proof_time(engine, leaves: int) -> tuple[float, int, int]:
    """Median seconds to build an inclusion proof in a log of `leaves`, the most rows read, the longest proof."""
    _fill(engine, leaves)
    sessions = sessionmaker(engine)
    times, rows_read, longest = [], 0, 0
    rng = random.Random(7)
    with sessions() as session:
        tlog.inclusion(session, 0, leaves)  # warm-up
        for _ in range(SAMPLES):
            index = rng.randrange(leaves)
            start = time.perf_counter()
            proof = tlog.inclusion(session, index, leaves)
            times.append(time.perf_counter() - start)
            rows_read = max(rows_read, len(merkle.needed_for_inclusion(index, leaves)))
            longest = max(longest, len(proof))
    return statistics.median(times), rows_read, longest


def appends_per_second(engine, vault: Vault, count: int) -> tuple[float, float]:
    """Appends (lock, leaf, nodes, signed checkpoint, commit) per second on the log as it stands, against
    the same number of one-row transactions: the floor any durable append pays."""
    sessions = sessionmaker(engine)
    start = time.perf_counter()
    for i in range(count):
        with sessions() as session:
            tlog.lock(session)
            tlog.append(session, vault, ORIGIN, hashlib.sha256(i.to_bytes(8, "big")).digest(), utcnow())
            session.commit()
    appends = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(count):
        with engine.begin() as conn:
            conn.execute(insert(LogNode), {"level": 99, "index": i, "hash": b"x" * 32})
    floor = count / (time.perf_counter() - start)
    with engine.begin() as conn:
        conn.execute(delete(LogNode).where(LogNode.level == 99))
    return appends, floor


def log_figures(database_url: str, token_keys: str, small: int, large: int, appends: int) -> dict:
    engine = make_engine(database_url)
    try:
        small_time, _, _ = proof_time(engine, small)
        large_time, rows_read, longest = proof_time(engine, large)
        rate, floor = appends_per_second(engine, Vault(token_keys.split(",")), appends)
        return {"small_time": small_time, "large_time": large_time, "rows_read": rows_read,
                "proof_hashes": longest, "appends": rate, "append_floor": floor}
    finally:
        engine.dispose()
