"""Erasure's figures on /metrics, read from the database at each scrape."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from consent.networks import Network
from erasure.engine.slots import Slots
from erasure.models import FAILING_STEPS, UNFINISHED_STEPS, ErasureStep, OptOutRequest, Receipt, RequestStatus
from erasure.oversight import calls
from erasure.receipts import tlog as transparency_log
from erasure.stores.coverage import Watch
from erasure.stores.datamap import DataMap
from erasure.stores.key_coverage import LOOK_AT

# The windows an alert may watch before a deadline is missed: a day, for paging; a week, for a ticket.
DUE_SOON = {"1d": dt.timedelta(days=1), "7d": dt.timedelta(days=7)}


def collect(session: Session) -> Iterator[Metric]:
    """Opt-outs by status and overdue, the oldest unfinished step, the failing steps, receipts issued and the
    transparency log's size: a handful of small queries, then the families (app.metrics.register_collector)."""
    now = utcnow()
    overdue = case((OptOutRequest.deadline < now, 1), else_=0)
    due = {window: case((OptOutRequest.deadline.between(now, now + length), 1), else_=0)
           for window, length in DUE_SOON.items()}
    by_status: dict[str, int] = dict.fromkeys(RequestStatus, 0)
    late = 0
    soon = dict.fromkeys(DUE_SOON, 0)
    for status, total, overdue_count, *due_counts in session.execute(
            select(OptOutRequest.status, func.count(), func.sum(overdue), *(func.sum(d) for d in due.values()))
            .group_by(OptOutRequest.status)):
        by_status[status] = total
        if status != RequestStatus.COMPLETED:
            late += overdue_count or 0
            for window, n in zip(DUE_SOON, due_counts, strict=True):
                soon[window] += n or 0
    oldest = session.scalar(select(func.min(OptOutRequest.requested_at))
                            .join(ErasureStep, ErasureStep.request_id == OptOutRequest.id)
                            .where(ErasureStep.status.in_(UNFINISHED_STEPS)))
    failing = session.execute(
        select(ErasureStep.kind, ErasureStep.target, ErasureStep.status, func.count())
        .where(ErasureStep.status.in_(FAILING_STEPS))
        .group_by(ErasureStep.kind, ErasureStep.target, ErasureStep.status)).all()
    receipts = session.scalar(select(func.count()).select_from(Receipt)) or 0
    leaves = transparency_log.size(session)
    checkpoint = transparency_log.latest_checkpoint(session)
    signed = checkpoint.tree_size if checkpoint is not None else 0

    requests = GaugeMetricFamily("ownstory_optout_requests", "Opt-out requests by status.", labels=["status"])
    for status, total in by_status.items():
        requests.add_metric([status], total)
    yield requests
    yield GaugeMetricFamily("ownstory_optout_requests_overdue",
                            "Opt-out requests not completed by their deadline.", value=late)
    due_soon = GaugeMetricFamily(
        "ownstory_optout_requests_due_soon",
        "Opt-out requests not completed whose deadline comes within the window (1d, 7d): not yet overdue.",
        labels=["within"])
    for window, n in soon.items():
        due_soon.add_metric([window], n)
    yield due_soon
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    yield GaugeMetricFamily(
        "ownstory_oldest_unfinished_step_age_seconds",
        "Seconds since the oldest opt-out with a step not yet done (pending, running, retrying or "
        "needs attention) was requested; 0 when every step is done.", value=age)
    failures = GaugeMetricFamily(
        "ownstory_erasure_step_failures",
        "Steps failing now (retrying or needing attention), by kind, target (the network key for "
        "revoke steps, the store for purge steps, ownstory for forget steps) and status.",
        labels=["kind", "target", "status"])
    for kind, target, status, total in failing:
        failures.add_metric([kind, target, status], total)
    yield failures
    yield CounterMetricFamily("ownstory_receipts_issued", "Deletion receipts issued.", value=receipts)
    yield GaugeMetricFamily("ownstory_log_size", "Leaves in the transparency log.", value=leaves)
    yield GaugeMetricFamily("ownstory_log_signed_tree_size", "The tree size of the latest signed checkpoint.",
                            value=signed)


def collect_calls(session: Session, networks: Mapping[str, Network], datamap: DataMap,
                  slots: Slots) -> Iterator[Metric]:
    """What each network and store still has to do, and its calls at once where it has a max_in_flight: the
    health page's table (oversight/calls.py), for alerts."""
    rows = calls.still_to_do(session, networks, datamap, slots, utcnow())
    unfinished = GaugeMetricFamily(
        "ownstory_erasure_steps_unfinished",
        "Revocations (kind revoke, target the network) and erasures (kind purge, target the store) not done yet: "
        "waiting (not started yet, or to be retried) or under_way (claimed by a worker).",
        labels=["kind", "target", "state"])
    limits = GaugeMetricFamily("ownstory_max_in_flight", "A network's or store's max_in_flight, where it has one.",
                               labels=["kind", "target"])
    in_flight = GaugeMetricFamily(
        "ownstory_calls_in_flight", "Calls under way now at a network or store with a max_in_flight, from every "
        "worker together (where the database lets them be read: PostgreSQL, or an SQLite file).",
        labels=["kind", "target"])
    longest = GaugeMetricFamily(
        "ownstory_erasure_longest_wait_seconds",
        "Seconds the longest-due waiting revocation (or erasure) at a network (or store) has been due and not "
        "claimed; 0 when none is due. Growing: the workers are not keeping up there, or are held off it.",
        labels=["kind", "target"])
    for row in rows:
        longest.add_metric([row.kind, row.target], row.longest_wait or 0.0)
        unfinished.add_metric([row.kind, row.target, "waiting"], row.waiting)
        unfinished.add_metric([row.kind, row.target, "under_way"], row.under_way)
        if row.limit is not None:
            limits.add_metric([row.kind, row.target], row.limit)
        if row.calling is not None:
            in_flight.add_metric([row.kind, row.target], row.calling)
    yield unfinished
    yield longest
    yield limits
    yield in_flight


def collect_datamap(watch: Watch) -> Iterator[Metric]:
    """The health page's data map section, for alerts: tables a SQL store has that the map leaves out, tables and
    columns the map names that the store lacks, searched columns without an index, and the keys of a Redis or S3 store
    that no entry reaches (the health page's latest look, at most five minutes old)."""
    gaps = GaugeMetricFamily(
        "ownstory_datamap_tables",
        "Tables in a SQL store that the data map leaves out (state unmapped: a leaver's data there stays), and tables "
        "the map names that the store lacks (state missing: purging them fails). 0 when the map and store agree; no "
        "sample for a store that cannot be listed or could not be asked.",
        labels=["store", "state"])
    columns = GaugeMetricFamily(
        "ownstory_datamap_columns",
        "Columns the data map names that their table lacks (state missing: purging them fails), and identity or "
        "timestamp columns no index starts with (state unindexed: each purge and count reads the whole table).",
        labels=["store", "state"])
    keys = GaugeMetricFamily(
        "ownstory_datamap_keys",
        "Keys of a Redis store, or objects of an S3 bucket, that no entry of the data map reaches and "
        "holds_no_personal_data does not list (state "
        f"uncovered: a leaver's data there stays), of the first {LOOK_AT:,} it lists; state looked_at: how many it "
        "listed.",
        labels=["store", "state"])
    for found in watch.latest() or []:
        if found.gaps is None:
            continue
        if found.gaps.uncovered is not None:
            keys.add_metric([found.store, "uncovered"], found.gaps.uncovered.count)
            keys.add_metric([found.store, "looked_at"], found.gaps.uncovered.looked_at)
            continue
        gaps.add_metric([found.store, "unmapped"], len(found.gaps.unmapped))
        gaps.add_metric([found.store, "missing"], len(found.gaps.missing))
        columns.add_metric([found.store, "missing"], len(found.gaps.missing_columns))
        columns.add_metric([found.store, "unindexed"], len(found.gaps.unindexed))
    yield gaps
    yield columns
    yield keys
