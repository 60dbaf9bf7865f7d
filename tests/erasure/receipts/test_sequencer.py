"""Receipts sequenced in batches: pooled first, then appended as leaves by one sequencer at a time, one signed
checkpoint per batch; nothing pooled is lost when a worker dies before its batch."""
from __future__ import annotations

import base64
import datetime as dt
import threading
import time

import pytest
from sqlalchemy import func, select

from app.db import utcnow, writing
from erasure.engine import handoff, sequencing
from erasure.engine.worker import Worker
from erasure.models import Checkpoint, ErasureStep, LogNode, LogSequencer, OptOutRequest, PooledReceipt, Receipt
from tests.conftest import db_session
from tests.erasure.engine.helpers_processes import (
    make_crowd,
    submit_all,
    wait_for,
)

QUICK_LEASE = {"erasure_lease_seconds": 2, "erasure_retry_base_seconds": 0.05}


def hold_the_sequencer(app, until: dt.datetime) -> None:
    """Another sequencer holds the log's lease until `until` (in the past: it let it run out)."""
    # Merged: the tests empty every table between them, this row too. Under the write lock, since the
    # merge reads first and a worker may be writing: on SQLite a transaction that has read cannot
    # then write once another has committed ("database is locked", which no busy timeout waits out).
    with db_session(app) as db, writing(db):
        db.merge(LogSequencer(id=1, held_by="a sequencer on another machine", held_until=until))


def pooled(app) -> dict[str, str]:
    with db_session(app) as db:
        return dict(db.execute(select(PooledReceipt.request_id, PooledReceipt.jws)).all())


def assert_one_leaf_each_and_consistent_checkpoints(app, client, request_ids: list[str]) -> list[Receipt]:
    """Every request has one receipt, each one leaf of the log, and every checkpoint the log signed
    agrees with the latest: what an auditor checks with the log's own API."""
    from erasure.verifier import merkle, note

    with db_session(app) as db:
        receipts = list(db.scalars(select(Receipt).order_by(Receipt.leaf_index)))
        leaves = dict(db.execute(select(LogNode.index, LogNode.hash).where(LogNode.level == 0)).all())
        checkpoints = list(db.scalars(select(Checkpoint).order_by(Checkpoint.tree_size)))
        assert db.scalar(select(func.count()).select_from(PooledReceipt)) == 0
    assert sorted(r.request_id for r in receipts) == sorted(request_ids)
    assert [r.leaf_index for r in receipts] == list(range(len(receipts))) == sorted(leaves)
    assert all(leaves[r.leaf_index] == merkle.leaf_hash(r.jws.encode()) for r in receipts)
    log_key = client.get("/api/v1/log/key").get_data(as_text=True).strip()
    latest = note.open_checkpoint(client.get("/api/v1/log/checkpoint").get_data(as_text=True), log_key)
    assert latest.size == len(receipts) == checkpoints[-1].tree_size
    for older in checkpoints[:-1]:
        proof = client.get("/api/v1/log/proof/consistency",
                           query_string={"first": older.tree_size, "second": latest.size}).json
        assert merkle.verify_consistency(older.tree_size, latest.size, older.root, latest.root,
                                         [base64.b64decode(h) for h in proof["hashes"]])
    for receipt in receipts:
        proof = client.get("/api/v1/log/proof/inclusion",
                           query_string={"leaf_index": receipt.leaf_index, "tree_size": latest.size}).json
        assert merkle.verify_inclusion(receipt.leaf_index, latest.size, merkle.leaf_hash(receipt.jws.encode()),
                                       [base64.b64decode(h) for h in proof["hashes"]], latest.root)
    return receipts


def test_receipts_pooled_while_a_batch_is_appended_go_together_under_one_checkpoint(app, client, demo_network,
                                                                                   platform_url):
    crowd = make_crowd(app, demo_network.app, platform_url, 3)
    request_ids = submit_all(app, crowd)
    hold_the_sequencer(app, utcnow() + dt.timedelta(hours=1))
    worker = Worker(app, threads=4)
    running = threading.Thread(target=worker.drain)
    running.start()
    try:
        wait_for(lambda: len(pooled(app)) == 3, 60, "the three receipts to be pooled")
        with db_session(app) as db:
            assert db.scalar(select(func.count()).select_from(Receipt)) == 0  # pooled, not yet logged
            assert set(db.scalars(select(ErasureStep.status).where(ErasureStep.kind == "receipt"))) == {"running"}
        hold_the_sequencer(app, utcnow() - dt.timedelta(seconds=1))  # its lease ran out
        running.join(60)
    finally:
        worker.close()
    assert not running.is_alive()
    receipts = assert_one_leaf_each_and_consistent_checkpoints(app, client, request_ids)
    with db_session(app) as db:
        assert db.scalar(select(func.count()).select_from(Checkpoint)) == 1  # one batch, one checkpoint
        assert {r.status for r in db.scalars(select(OptOutRequest))} == {"completed"}
        steps = {s.request_id: s for s in db.scalars(select(ErasureStep).where(ErasureStep.kind == "receipt"))}
    assert all(steps[r.request_id].result == {"receipt_id": r.id, "leaf_index": r.leaf_index} for r in receipts)
    for receipt in receipts:
        bundle = client.get(f"/api/v1/receipts/{receipt.id}").json
        assert bundle["log"]["tree_size"] == 3 and bundle["log"]["leaf_index"] == receipt.leaf_index


@pytest.mark.slow
def test_a_worker_killed_between_pooling_and_sequencing_loses_no_receipt(app, client, demo_network, platform_url,
                                                                         start_worker):
    crowd = make_crowd(app, demo_network.app, platform_url, 3, first_account=80000)
    request_ids = submit_all(app, crowd)
    hold_the_sequencer(app, utcnow() + dt.timedelta(hours=1))
    first = start_worker(**QUICK_LEASE)
    wait_for(lambda: len(pooled(app)) == 3, 90, "the first worker to pool the three receipts")
    first.kill()
    signed_by_the_first = pooled(app)
    with db_session(app) as db:
        assert db.scalar(select(func.count()).select_from(Receipt)) == 0
        cut = list(db.scalars(select(ErasureStep.id).where(ErasureStep.kind == "receipt",
                                                           ErasureStep.status == "running")))
    assert len(cut) == 3

    def leases_ran_out() -> bool:
        with db_session(app) as db:
            return db.scalar(select(func.count()).select_from(ErasureStep).where(
                ErasureStep.id.in_(cut), ErasureStep.lease_expires_at >= utcnow())) == 0

    # Only then is the log free: otherwise the next worker's sequencer may log the pool, and complete the cut
    # steps, before their leases run out and the worker takes them over (what this test is about).
    wait_for(leases_ran_out, 30, "the cut steps' leases to run out")
    hold_the_sequencer(app, utcnow() - dt.timedelta(seconds=1))
    second = start_worker(**QUICK_LEASE)
    wait_for(lambda: {r.status for r in _requests(app)} == {"completed"}, 90, "every request to complete")
    second.stop()

    receipts = assert_one_leaf_each_and_consistent_checkpoints(app, client, request_ids)
    # The receipts the first worker signed and pooled are the ones logged, once each: none signed again.
    assert {r.request_id: r.jws for r in receipts} == signed_by_the_first
    with db_session(app) as db:
        attempts = dict(db.execute(select(ErasureStep.id, ErasureStep.attempts).where(ErasureStep.id.in_(cut))).all())
    assert all(n >= 2 for n in attempts.values()), "the cut steps were taken over by the second worker"


def test_a_drain_sequences_its_receipts_in_one_batch_under_one_checkpoint(app, client, demo_network, platform_url,
                                                                        monkeypatch):
    monkeypatch.setattr(sequencing, "EVERY_SECONDS", 3600.0)  # no turn while busy: the one before drain returns
    crowd = make_crowd(app, demo_network.app, platform_url, 4, first_account=81000)
    request_ids = submit_all(app, crowd)
    worker = Worker(app, threads=4)
    try:
        worker.drain()
    finally:
        worker.close()
    receipts = assert_one_leaf_each_and_consistent_checkpoints(app, client, request_ids)  # each proof verifies
    with db_session(app) as db:
        assert [c.tree_size for c in db.scalars(select(Checkpoint))] == [4]  # one batch, one signed checkpoint
        assert {r.status for r in db.scalars(select(OptOutRequest))} == {"completed"}
        steps = {s.request_id: s for s in db.scalars(select(ErasureStep).where(ErasureStep.kind == "receipt"))}
    assert all(steps[r.request_id].result == {"receipt_id": r.id, "leaf_index": r.leaf_index} for r in receipts)
    assert all(s.attempts == 1 and s.lease_owner is None for s in steps.values())


def test_a_drain_returns_only_once_its_receipts_are_sequenced(app, client, demo_network, platform_url, worker):
    crowd = make_crowd(app, demo_network.app, platform_url, 2, first_account=82000)
    request_ids = submit_all(app, crowd)
    lapses = utcnow() + dt.timedelta(seconds=3)
    hold_the_sequencer(app, lapses)  # a sequencer that died holding the log's lease, which lapses in 3 s
    worker.drain()
    assert utcnow() >= lapses  # it waited for the lease, rather than returning with its receipts pooled
    assert_one_leaf_each_and_consistent_checkpoints(app, client, request_ids)
    assert {r.status for r in _requests(app)} == {"completed"}


def test_a_handed_off_step_whose_sequencer_died_is_taken_again_and_completes_with_one_leaf(
        make_app, demo_network, platform_url):
    app = make_app({"ERASURE_LEASE_SECONDS": 1})  # the hand-off's lease too
    client = app.test_client()
    crowd = make_crowd(app, demo_network.app, platform_url, 2, first_account=83000)
    request_ids = submit_all(app, crowd)
    hold_the_sequencer(app, utcnow() + dt.timedelta(seconds=6))  # it died; its lease lapses in 6 s
    first = Worker(app, threads=2)
    running = threading.Thread(target=first.drain)
    running.start()  # pools and hands off both receipts, then waits for the log's lease
    second = Worker(app, threads=2)
    try:
        wait_for(lambda: len(pooled(app)) == 2, 60, "the first worker to pool both receipts")
        signed_by_the_first = pooled(app)
        time.sleep(1.5)  # the hand-off's lease runs out: the steps are due again
        second.drain()  # takes them again, finds them pooled, hands them off, and sequences them
        running.join(60)
    finally:
        first.close()
        second.close()
    receipts = assert_one_leaf_each_and_consistent_checkpoints(app, client, request_ids)
    assert {r.request_id: r.jws for r in receipts} == signed_by_the_first  # none signed twice
    with db_session(app) as db:
        steps = list(db.scalars(select(ErasureStep).where(ErasureStep.kind == "receipt")))
        assert {r.status for r in db.scalars(select(OptOutRequest))} == {"completed"}
    assert all(s.status == "done" and s.attempts == 2 for s in steps), [(s.status, s.attempts) for s in steps]


def _requests(app) -> list[OptOutRequest]:
    with db_session(app) as db:
        return list(db.scalars(select(OptOutRequest)))


def test_a_receipt_waiting_for_its_batch_holds_back_its_mail_until_the_batch_logs_it(app, client, demo_network,
                                                                                      platform_url, monkeypatch):
    monkeypatch.setattr(sequencing, "WAIT", 0.3)  # a drain soon gives up on a log another sequencer holds
    crowd = make_crowd(app, demo_network.app, platform_url, 2, first_account=84000)
    request_ids = submit_all(app, crowd)
    hold_the_sequencer(app, utcnow() + dt.timedelta(hours=1))
    worker = Worker(app, threads=2)
    try:
        worker.drain()  # pools both receipts and hands them off; the log stays busy
        with db_session(app) as db:
            steps = {(s.request_id, s.kind): s for s in db.scalars(select(ErasureStep))}
        for request_id in request_ids:
            receipt, mail = steps[(request_id, "receipt")], steps[(request_id, "notify")]
            assert receipt.status == "running" and receipt.lease_owner == handoff.HANDED_OFF
            # not due before the hand-off's lease runs out: no claim reads it meanwhile, nor is it mailed early
            assert mail.status == "pending" and mail.not_before >= receipt.lease_expires_at
        hold_the_sequencer(app, utcnow() - dt.timedelta(seconds=1))
        worker.drain()  # logs the pool; its batch makes the mail due at once
    finally:
        worker.close()
    assert_one_leaf_each_and_consistent_checkpoints(app, client, request_ids)
    assert {r.status for r in _requests(app)} == {"completed"}
