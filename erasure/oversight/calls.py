"""What each network (its revocations) and each store (its erasures) still has to do, and, where it takes only
so many calls at once (max_in_flight), how many every worker together has with it now: for the operators'
health page and /metrics alike. Never personal data: counts per network and store."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from consent.networks import Network
from erasure.engine import slots as shared_slots
from erasure.models import StepKind
from erasure.oversight import queries
from erasure.stores.datamap import DataMap

# What the health page calls a network or store the queue still names but the configuration no longer lists.
NOT_CONFIGURED: dict[str, str] = {StepKind.REVOKE: "not in the catalogue", StepKind.PURGE: "not in the data map"}


@dataclass(frozen=True)
class Calls:
    kind: str  # revoke (at a network) or purge (at a store)
    target: str  # the network's key, or the store's name
    name: str  # as the operators know it
    waiting: int
    under_way: int
    limit: int | None  # its max_in_flight; None: no limit
    calling: int | None  # of the steps under way, those in a call now (holding a slot); None: not known
    longest_wait: float | None  # seconds the longest-due waiting step has been due; None: none is due
    configured: bool = True  # in the catalogue or the data map now


def still_to_do(session: Session, networks: Mapping[str, Network], datamap: DataMap,
                slots: shared_slots.Slots, now: dt.datetime) -> list[Calls]:
    """Every network in the catalogue and store in the data map, then any the queue still names that neither
    lists now: two statements at most (the queue's counts, and the slots in use where a limit is set)."""
    unfinished = queries.unfinished_calls(session, now)
    places: list[tuple[str, str, str, int | None]] = [
        (StepKind.REVOKE, key, network.name, network.revocation.max_in_flight) for key, network in networks.items()]
    places += [(StepKind.PURGE, store.name, store.name, store.max_in_flight) for store in datamap.stores]
    listed = {(kind, target) for kind, target, _name, _limit in places}
    places += [(kind, target, NOT_CONFIGURED[kind], None)
               for kind, target in sorted(unfinished) if (kind, target) not in listed]
    limits = {shared_slots.name_of(kind, target): limit for kind, target, _name, limit in places if limit}
    in_use = slots.in_use(limits) or {}
    rows = []
    for kind, target, name, limit in places:
        found = unfinished.get((kind, target), queries.Unfinished(kind, target, 0, 0))
        wait = None if found.due_since is None else max(0.0, (now - found.due_since).total_seconds())
        rows.append(Calls(kind, target, name, found.waiting, found.under_way, limit,
                          in_use.get(shared_slots.name_of(kind, target)), wait, (kind, target) in listed))
    return rows
