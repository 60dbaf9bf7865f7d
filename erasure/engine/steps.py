"""What each erasure step does. Every step is idempotent: running it twice does no harm."""
from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, cast

import requests
from sqlalchemy import CursorResult, Delete, bindparam, delete
from sqlalchemy.orm import Session

from app.db import table_of, utcnow, write_lock
from app.mail import MailError
from app.models import User
from app.text import iso_utc
from consent import ledger
from consent.grants import NetworkError, ReconnectRequired, expires_at_of, expiring, refreshed
from consent.models import ConsentEvent, ConsentState, Grant
from consent.networks import Network
from consent.oauth import NetworkHttp
from erasure.context import ErasureContext
from erasure.engine.revocation import TIMEOUT, GrantTokens, needs_live_access_token, revoke
from erasure.models import ErasureStep, OptOutRequest, StepKind
from erasure.optout import mail_text
from erasure.optout.service import entries_in_scope, lay_revocations, open_contact, open_identities
from erasure.receipts import issue
from erasure.stores.datamap import Identities
from erasure.stores.kinds import Entry, StoreKind, StoreMisconfigured, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass
class Result:
    """A step's outcome. `retry`: try again later; `attention`: a person should look, while it keeps trying."""

    done: bool = False
    retry: bool = False
    attention: bool = False
    error: str | None = None
    retry_after: float | None = None
    result: dict = field(default_factory=dict)  # recorded when done; when not, only if set (why it waits)
    clear_params: bool = False  # e.g. destroy the sealed tokens once the network confirmed
    handed_off: bool = False  # a receipt waiting in the log's pool: the sequencer records it done (handoff.py)


class StepFailed(Exception):
    def __init__(self, message: str, attention: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.attention = attention
        self.retry_after = retry_after  # what a store asked for (a service's Retry-After): the least we wait


# A call at a store, held to its max_in_flight: the worker's, for the erasures verify asks for (a purge step is held
# to it whole, by the worker).
StoreCall = Callable[[str], AbstractContextManager[object]]


def _any_time(_store: str) -> AbstractContextManager[object]:
    return nullcontext()


def run(session: Session, ctx: ErasureContext, step: ErasureStep, request: OptOutRequest, now: dt.datetime,
        http: requests.Session, heartbeat, timeout=TIMEOUT, store_call: StoreCall = _any_time) -> Result:
    try:
        if step.kind == StepKind.REVOKE:
            return _revoke(ctx, step, request.deadline, now, http, heartbeat, timeout)
        if step.kind == StepKind.PURGE:
            return _purge(ctx, step, request, heartbeat)
        if step.kind == StepKind.FORGET:
            return _forget(session, request, now)
        if step.kind == StepKind.VERIFY:
            return _verify(ctx, step, request, heartbeat, store_call)
        if step.kind == StepKind.RECEIPT:
            return _receipt(session, ctx, request)
        if step.kind == StepKind.NOTIFY:
            return _notify(ctx, request)
    except StepFailed as exc:
        return Result(retry=True, attention=exc.attention, error=str(exc), retry_after=exc.retry_after)
    return Result(attention=True, retry=True, error=f"no handler for step kind {step.kind!r}")


def _revoke(ctx: ErasureContext, step: ErasureStep, deadline: dt.datetime, now: dt.datetime, http: requests.Session,
            heartbeat, timeout=TIMEOUT) -> Result:
    network = ctx.networks.get(step.target)
    if network is None:
        raise StepFailed(f"the network {step.target!r} is no longer in the catalogue", attention=True)
    params = step.params
    tokens = GrantTokens(
        access_token=_open(ctx, params.get("access_token")),
        refresh_token=_open(ctx, params.get("refresh_token")),
        account_id=params.get("account_id", ""),
        access_expires_at=_when(params.get("access_expires_at")),
    )
    if needs_live_access_token(network) and tokens.refresh_token and expiring(tokens.access_expires_at, now):
        tokens = _refresh(ctx, step, network, tokens, now, heartbeat, timeout)
    outcome = revoke(network, tokens, http, timeout, deadline=deadline)
    if outcome.kind in ("revoked", "already_invalid", "manual"):
        result = {"network": step.target, "outcome": outcome.kind, "at": iso_utc(now)}
        if outcome.note:
            result["note"] = outcome.note
        if outcome.kind == "manual":
            result["manual_url"] = network.revocation.manual_url
        return Result(done=True, result=result, clear_params=True)
    # Why it waits, for the status page's words; `error`, the network's answer, is for the operators.
    waiting = "unanswered" if outcome.kind == "retry" else "refused"
    return Result(retry=True, attention=outcome.kind == "failed", error=outcome.error,
                  retry_after=outcome.retry_after, result={"network": step.target, "waiting": waiting})


def _refresh(ctx: ErasureContext, step: ErasureStep, network: Network, tokens: GrantTokens, now: dt.datetime,
             heartbeat, timeout) -> GrantTokens:
    """Fresh tokens for a revocation signed by the user's access token (Meta's), which an expired one
    cannot sign. The new tokens replace the sealed ones in the step's params before they are used:
    a network that rotates refresh tokens has spent the old one, so a retry must find the new one."""
    try:
        token = refreshed(network, cast(str, tokens.refresh_token), NetworkHttp(timeout))
    except ReconnectRequired:
        # The grant is dead at the network: revoke with what is held, and the network says so.
        log.info("step %s: %s refused the refresh token; revoking with the expired access token", step.id,
                 network.key)
        return tokens
    except NetworkError as exc:
        raise StepFailed(f"could not refresh the access token first ({exc})") from None
    expires = expires_at_of(token, now)
    params = {**step.params, "access_token": _seal(ctx, token["access_token"])}
    if token.get("refresh_token"):
        params["refresh_token"] = _seal(ctx, token["refresh_token"])
    params.pop("access_expires_at", None)
    if expires is not None:
        params["access_expires_at"] = iso_utc(expires)
    heartbeat(params=params)
    log.info("step %s: refreshed the access token at %s before revoking", step.id, network.key)
    return GrantTokens(token["access_token"], token.get("refresh_token") or tokens.refresh_token,
                       tokens.account_id, expires)


def _seal(ctx: ErasureContext, token: str) -> str | None:
    sealed = ctx.vault.seal(token)
    return base64.b64encode(sealed).decode() if sealed else None


def _when(text: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _open(ctx: ErasureContext, sealed_b64: str | None) -> str | None:
    return ctx.vault.open(base64.b64decode(sealed_b64)) if sealed_b64 else None


def _identities(ctx: ErasureContext, request: OptOutRequest) -> Identities:
    ids = open_identities(ctx, request)
    if ids is None:
        raise StepFailed("the request's identities are gone, so its data cannot be found", attention=True)
    return ids


def _entry(ctx: ErasureContext, step: ErasureStep) -> tuple[StoreKind, Entry]:
    """The store and entry a purge step names: by the entry's key, or, for a step laid before store
    kinds, by the table and column it named (a sql entry's key is "table.column")."""
    p = step.params
    key = p["entry"] if "entry" in p else f"{p.get('table')}.{p.get('column')}"
    found = ctx.datamap.find(p.get("store", ""), key)
    if found is not None:
        return found
    raise StepFailed(f"the data map no longer lists {p.get('store')}/{key}", attention=True)


def _purge(ctx: ErasureContext, step: ErasureStep, request: OptOutRequest, heartbeat) -> Result:
    if "entries" in step.params:
        return _purge_store(ctx, step, request, heartbeat)
    return _purge_entry(ctx, step, request, heartbeat)  # a step laid before one step purged a whole store


def _purge_store(ctx: ErasureContext, step: ErasureStep, request: OptOutRequest, heartbeat) -> Result:
    """Every entry of one store the step names, in order, counted by category.

    The store counts all its entries at the first attempt in one call, and those counts are recorded, in
    one write, before anything is purged: a rerun after a crash finishes the job without counting the
    same items twice, nor losing those a batch committed before the crash.
    """
    name = step.params["store"]
    entries = []
    for key in step.params["entries"]:
        found = ctx.datamap.find(name, key)
        if found is None:
            raise StepFailed(f"the data map no longer lists {name}/{key}", attention=True)
        entries.append(found[1])
    store = ctx.datamap.store(name)
    ids = _identities(ctx, request)
    wanted = [(entry, ids.values_for(entry)) for entry in entries]
    recorded = {c["entry"]: c for c in step.result.get("categories", [])}
    jobs = {key: c["job"] for key, c in recorded.items() if c.get("job")}  # followed at a retry, never restarted
    categories = []
    try:
        having = [(entry, values) for entry, values in wanted if values]
        remaining = dict(zip((e.key for e, _ in having), store.count_many(having), strict=True)) if having else {}
        first = {key: recorded[key]["rows_at_start"] if key in recorded else n for key, n in remaining.items()}

        def record() -> None:
            heartbeat(result={"store": name, "categories": [
                {"entry": e.key, "category": e.category, "rows_at_start": first.get(e.key, 0),
                 **({"job": jobs[e.key]} if e.key in jobs else {})} for e in entries]})

        if not recorded and any(first.values()):
            record()
        for entry, values in wanted:
            rows = 0
            job = jobs.get(entry.key)
            # Nothing there and no job under way: nothing to ask for (a second pass that finds nothing new
            # starts no erasure job at a service).
            if values and (remaining[entry.key] or job):
                def started(handle: dict, key: str = entry.key) -> None:
                    jobs[key] = {"handle": handle, "remaining": remaining[key]}
                    record()

                purged = store.purge_resuming(entry, values, job["handle"] if job else None, started,
                                              on_batch=lambda _n: heartbeat())
                # what a job removed is set against what was there when it started; arrivals count too
                before = jobs[entry.key]["remaining"] if entry.key in jobs else remaining[entry.key]
                rows = first[entry.key] + max(0, purged - before)
            elif values:
                rows = first[entry.key]  # removed at an earlier attempt, whose answer was lost
            categories.append({"entry": entry.key, "category": entry.category, "rows": rows,
                               "rows_at_start": first.get(entry.key, 0)})
    except StoreUnavailable as exc:
        raise StepFailed(str(exc), retry_after=_asked_to_wait(exc)) from None
    except StoreMisconfigured as exc:
        raise StepFailed(str(exc), attention=True) from None
    return Result(done=True, result={"store": name, "rows": sum(c["rows"] for c in categories),
                                     "categories": categories})


def _purge_entry(ctx: ErasureContext, step: ErasureStep, request: OptOutRequest, heartbeat) -> Result:
    store, entry = _entry(ctx, step)
    values = _identities(ctx, request).values_for(entry)
    base = {"store": entry.store, "category": entry.category}
    if not values:
        return Result(done=True, result={**base, "rows": 0})
    try:
        # Items found at the first attempt are what the person had; a rerun after a crash
        # finishes the job without counting the same items twice.
        remaining = store.count(entry, values)
        first = step.result.get("rows_at_start")
        if first is None:
            first = remaining
            heartbeat(result={**base, "rows_at_start": remaining})
        job = step.result.get("job")  # a job the store started at an earlier attempt: followed, not started again

        def started(handle: dict) -> None:
            nonlocal job
            job = {"handle": handle, "remaining": remaining}
            heartbeat(result={**base, "rows_at_start": first, "job": job})

        purged = store.purge_resuming(entry, values, job["handle"] if job else None, started,
                                      on_batch=lambda _n: heartbeat())
        if job is not None:
            remaining = job["remaining"]  # what the job removed is set against what was there when it started
    except StoreUnavailable as exc:
        raise StepFailed(str(exc), retry_after=_asked_to_wait(exc)) from None
    except StoreMisconfigured as exc:
        raise StepFailed(str(exc), attention=True) from None
    rows = first + max(0, purged - remaining)  # rows that arrived while it ran are counted too
    return Result(done=True, result={**base, "rows": rows, "rows_at_start": first})


def _asked_to_wait(exc: Exception) -> float | None:
    """A store kind's StoreUnavailable carries the store's Retry-After (erasure/stores/kinds.py)."""
    return getattr(exc, "retry_after", None)


# Forget's DELETEs, built once, in Core: no object of these tables is loaded in a step's session to keep in step.
_GRANTS, _EVENTS, _STATES, _USERS = (table_of(model)
                                     for model in (Grant, ConsentEvent, ConsentState, User))
_DELETE_GRANTS = delete(_GRANTS).where(_GRANTS.c.user_id == bindparam("subject")).returning(*_GRANTS.c)
_DELETE_STATES = delete(_STATES).where(_STATES.c.subject_id == bindparam("subject"))
_DELETE_EVENTS = delete(_EVENTS).where(_EVENTS.c.subject_id == bindparam("subject")).returning(
    _EVENTS.c.seq, _EVENTS.c.network, _EVENTS.c.purpose, _EVENTS.c.version, _EVENTS.c.action, _EVENTS.c.method,
    _EVENTS.c.at)
_DELETE_USER = delete(_USERS).where(_USERS.c.id == bindparam("subject"))


def _forget(session: Session, request: OptOutRequest, now: dt.datetime) -> Result:
    """Ownstory's own records of the person. What stays is listed in the README and on the receipt.

    Each table is one DELETE, returning what forget still needs of its rows: nothing is read first.
    """
    forgotten = {"grants": 0, "account": 0, "consent_events": 0}
    write_lock(session)  # these writes commit with the step's outcome, in one transaction
    if request.user_id is None:
        return Result(done=True, result=forgotten)
    subject = {"subject": request.user_id}
    if request.scope == "all":
        # The grants in scope left at submission. One here now came in behind the opt-out (a connect that
        # raced it): its token is revoked by a step of its own, never deleted with the token still live.
        late = session.execute(_DELETE_GRANTS, subject).all()
        if late:
            log.warning("opt-out %s: %d grant(s) came in after it was submitted; revoking them", request.id,
                        len(late))
            lay_revocations(session, request.id, late, now)
        forgotten["grants"] = len(late)
        session.execute(_DELETE_STATES, subject)
        events = session.execute(_DELETE_EVENTS, subject).all()
        forgotten["consent_events"] = len(events)
        # What proves the withdrawal stays, in a chain named after the request, not the person.
        ledger.start_chain(session, f"optout:{request.id}", [
            ledger.Change(e.network, e.purpose, e.version, "withdraw", "optout", e.at)
            for e in sorted(events, key=lambda e: e.seq) if e.method == "optout" and e.action == "withdraw"])
        forgotten["account"] = _deleted(session, _DELETE_USER, subject)
    # Leaving one network: its grants left at submission. One there now is the person connecting again
    # after it, their new consent: it is theirs to keep, not ours to delete (and delete its token unrevoked).
    return Result(done=True, result=forgotten)


def _deleted(session: Session, statement: Delete, params: dict | None = None) -> int:
    """The rows a DELETE removed: Session.execute is typed to return a Result, and rowcount is on CursorResult."""
    return cast(CursorResult[Any], session.execute(statement, params)).rowcount


def _verify(ctx: ErasureContext, step: ErasureStep, request: OptOutRequest, heartbeat,
            store_call: StoreCall = _any_time) -> Result:
    """The one look at every store once access is revoked: verify runs after every revocation is confirmed
    (its phase follows theirs, and those forget lays), so what a token let in meanwhile, or the platform wrote
    after the purge, is purged now and counted as late; anything still there after that fails the step, and
    the request needs attention.

    As a store's purge does, it records what it found, in one write, before it purges anything, and with it
    any job a store starts: a rerun after a crash follows that job rather than starting a second, and counts
    each late row once. A round that leaves rows behind is settled before the step fails, so that the next
    attempt looks afresh (and asks a service for a new erasure, not the finished one again).

    Each erasure it asks of a store with a max_in_flight takes one of the store's calls (store_call), as the
    store's purge steps do; its counts are single calls, and take none.
    """
    ids = _identities(ctx, request)
    settled: list[dict] = step.result.get("late_rows", [])  # counted by rounds an earlier attempt finished
    recorded = {(f["store"], f["entry"]): f for f in step.result.get("found", [])}
    wanted: dict[str, list[tuple[Entry, list[str]]]] = {}
    for entry in entries_in_scope(ctx, request.scope):
        values = ids.values_for(entry)
        if values:
            wanted.setdefault(entry.store, []).append((entry, values))
    late: list[dict] = []
    residual: list[str] = []
    try:
        remaining = {(name, entry.key): n for name, pairs in wanted.items()
                     for (entry, _v), n in zip(pairs, ctx.datamap.store(name).count_many(pairs), strict=True)}
        found = _found(wanted, remaining, recorded)

        def record() -> None:
            heartbeat(result={"late_rows": settled, "found": list(found.values())})

        if found != recorded:
            record()
        for name, pairs in wanted.items():
            store = ctx.datamap.store(name)
            for entry, values in pairs:
                key = (name, entry.key)
                if key not in found:
                    continue
                job = found[key].get("job")
                rows = found[key]["rows_at_start"]  # as is, if an earlier attempt purged them and its answer was lost
                if remaining[key] or job:
                    def started(handle: dict, key: tuple[str, str] = key) -> None:
                        found[key]["job"] = {"handle": handle, "remaining": remaining[key]}
                        record()

                    with store_call(name):  # the store's max_in_flight, as its purge steps keep to
                        purged = store.purge_resuming(entry, values, job["handle"] if job else None, started,
                                                      on_batch=lambda _n: heartbeat())
                    # What the store says it removed (a job: since it started), and what was found and gone before
                    # that; not what was found, as a round that leaves rows behind may not have removed them all.
                    before = found[key]["job"]["remaining"] if "job" in found[key] else remaining[key]
                    rows = max(0, rows - before) + purged
                left = store.count(entry, values)
                if left:
                    residual.append(f"{left} in {entry.store}/{entry.category}")
                late.append({"store": name, "category": entry.category, "rows": rows})
        if residual:
            heartbeat(result={"late_rows": _summed(settled + late), "found": []})  # this round is over
            raise StepFailed("rows remain after purge: " + ", ".join(residual), attention=True)
    except StoreUnavailable as exc:
        raise StepFailed(str(exc), retry_after=_asked_to_wait(exc)) from None
    except StoreMisconfigured as exc:
        raise StepFailed(str(exc), attention=True) from None
    return Result(done=True, result={"residual_rows": 0, "late_rows": _summed(settled + late)})


def _found(wanted: dict[str, list[tuple[Entry, list[str]]]], remaining: dict[tuple[str, str], int],
           recorded: dict[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
    """The late rows of each entry this round: what an earlier attempt of it recorded (and the job it started),
    or more, if more came in since; never fewer, as that attempt may have purged some before its answer was lost."""
    found: dict[tuple[str, str], dict] = {}
    for name, pairs in wanted.items():
        for entry, _values in pairs:
            key = (name, entry.key)
            earlier = recorded.get(key, {})
            if remaining[key] or earlier:
                found[key] = {"store": name, "entry": entry.key, "category": entry.category,
                              "rows_at_start": max(remaining[key], earlier.get("rows_at_start", 0)),
                              **({"job": earlier["job"]} if earlier.get("job") else {})}
    return found


def _summed(late: list[dict]) -> list[dict]:
    """Late rows by store and category, as the receipt counts them; none where nothing was late."""
    rows: dict[tuple[str, str], int] = {}
    for part in late:
        rows[(part["store"], part["category"])] = rows.get((part["store"], part["category"]), 0) + part["rows"]
    return [{"store": store, "category": category, "rows": n} for (store, category), n in rows.items() if n]


def _receipt(session: Session, ctx: ErasureContext, request: OptOutRequest) -> Result:
    """Signed into the log's pool and handed off to the log's sequencer, whose batch records the step done;
    done now if a batch logged it already (a rerun). One receipt, whatever happens."""
    write_lock(session)  # pooled in the transaction that records the hand-off: the sequencer finds both
    logged = issue.pool(session, ctx, request, utcnow())
    if logged is None:
        return Result(handed_off=True)
    return Result(done=True, result={"receipt_id": logged[0], "leaf_index": logged[1]})


def _notify(ctx: ErasureContext, request: OptOutRequest) -> Result:
    contact = open_contact(ctx, request)
    if not contact:
        return Result(done=True, result={"sent": False})
    try:
        ctx.mailer.send(contact, *mail_text.outcome(request, ctx.base_url))
    except MailError as exc:
        raise StepFailed(str(exc)) from None
    return Result(done=True, result={"sent": True})



