"""Receipts and the log: offline verification against raw Ed25519, proofs at 1,000,000 leaves, appends."""
from __future__ import annotations

import datetime as dt
import hashlib
import random
import statistics
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from flask import Flask
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import sessionmaker

from app.db import make_engine, utcnow, writing
from app.security import Vault
from bench.verification import benchmark
from erasure.context import context_from_app
from erasure.engine import sequencing as turns
from erasure.engine.sequencing import Sequencing
from erasure.models import Checkpoint, LogNode, OptOutRequest
from erasure.receipts import issue, sequencer, tlog
from erasure.verifier import merkle

SAMPLES = 200
ORIGIN = "bench.example/ownstory/receipts"
CLIENTS = 4  # receipt steps at once: `flask worker`'s threads
BATCH = sequencer.BATCH
EVERY_LEAVES = turns.EVERY_LEAVES


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


def _requests(engine, count: int) -> list[str]:
    """`count` finished opt-out requests without receipts, written in bulk: what the receipt steps sign."""
    now = utcnow()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with engine.begin() as conn:
        conn.execute(insert(OptOutRequest), [
            {"id": i, "scope": "all", "source": "person", "status": "in_progress", "requested_at": now,
             "deadline": now + dt.timedelta(days=30), "secret_hash": "0" * 64, "subject_commitment": "0" * 64,
             "identity_kinds": {}} for i in ids])
    return ids


def sequenced_per_second(app: Flask, count: int, clients: int = CLIENTS) -> dict:
    """The sequencer on the log as it stands: `count` receipts signed into the pool, then appended as leaves
    in batches (one signed checkpoint each), per second; the same end to end, as a worker runs it: `clients`
    threads each signing, pooling and handing off a receipt as the receipt step does, and the worker's
    Sequencing taking its turns (at most once a second, or every EVERY_LEAVES hand-offs), with the batches
    made; and one-row transactions per second, one at a time (the appends row's limit), and `clients` at once.
    """
    engine = app.extensions["ownstory_db"]["engine"]
    sessions = app.extensions["ownstory_db"]["sessionmaker"]
    ctx = context_from_app(app)
    ids = _requests(engine, 2 * count + 1)
    with sessions() as session:
        requests = {r.id: r for r in session.scalars(select(OptOutRequest).where(OptOutRequest.id.in_(ids)))}
        session.expunge_all()

    sequencing = Sequencing(sessions, ctx)

    def receipt(request_id: str) -> None:  # the receipt step: sign, pool and hand off, in one transaction
        with sessions() as session, writing(session):
            issue.pool(session, ctx, requests[request_id], utcnow())
        sequencing.handed_off()

    def checkpoints() -> int:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(Checkpoint)) or 0

    receipt(ids[0])  # warm-up: the keys are made or read once
    sequencing.turn(patient=True)
    before = checkpoints()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        signing = {pool.submit(receipt, request_id) for request_id in ids[1:count + 1]}
        while signing:  # as a worker's drain: a turn at most once a second, or as soon as EVERY_LEAVES wait
            done, signing = wait(signing, timeout=sequencing.due_in(), return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
            sequencing.when_due()
    sequencing.turn(patient=True)  # and one before the drain returns
    end_to_end = count / (time.perf_counter() - start)
    end_to_end_batches = checkpoints() - before

    with sessions() as session:  # the receipt steps sign into the pool; the sequencer's turn is timed alone
        for request_id in ids[count + 1:]:
            with writing(session):
                issue.pool(session, ctx, requests[request_id], utcnow())
    before = checkpoints()
    start = time.perf_counter()
    with sessions() as session:
        while sequencer.take_turn(session, "bench", utcnow()) and sequencer.append_batch(
                session, ctx.vault, ctx.log_origin, "bench", utcnow).more:
            pass
    sequenced = count / (time.perf_counter() - start)
    batches = checkpoints() - before

    def one_row(i: int) -> None:
        with engine.begin() as conn:
            conn.execute(insert(LogNode), {"level": 98, "index": i, "hash": b"x" * 32})

    start = time.perf_counter()
    for i in range(count):
        one_row(i)
    floor = count / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_row, range(count, 2 * count)))
    floor_at_once = count / (time.perf_counter() - start)
    with engine.begin() as conn:
        conn.execute(delete(LogNode).where(LogNode.level == 98))
    return {"sequenced": sequenced, "batches": batches, "end_to_end": end_to_end,
            "end_to_end_batches": end_to_end_batches, "floor": floor, "floor_at_once": floor_at_once}


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
