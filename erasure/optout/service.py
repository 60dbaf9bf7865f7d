"""Submitting an opt-out: in one transaction, consent stops, identities are suppressed, and the steps are laid."""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Row, delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import write_lock
from app.models import User
from app.text import b64url, iso_utc
from consent import service as consent_service
from consent.models import Grant
from consent.suppression import Identity, Peppers, lookup, suppress
from erasure.context import ErasureContext
from erasure.models import OPEN_REQUESTS, ErasureStep, OptOutRequest, RequestStatus, StepKind, StepStatus
from erasure.stores.datamap import Identities
from erasure.stores.kinds import Entry
from erasure.verifier import owner

log = logging.getLogger(__name__)

# Neutral reasons, none of them a judgement of the person or of their score.
REASONS = {
    "changed_without_notice": "The scoring or its rules changed without notice",
    "distrust": "I don't trust how my data is used",
    "no_longer_use": "I no longer use it",
    "privacy": "I want less of my data out there",
    "other": "Another reason",
}
MAX_REASON_TEXT = 2000

# Steps run phase by phase; a step waits until every step of a lower phase is done. The stores are purged
# while the revocations run (a network that is down holds back no deletion); Ownstory's own records go once
# every revocation is confirmed, and verify after that looks at every store again and purges what a token let
# in meanwhile.
PHASES = {StepKind.REVOKE: 1, StepKind.PURGE: 1, StepKind.FORGET: 3, StepKind.VERIFY: 4, StepKind.RECEIPT: 5,
          StepKind.NOTIFY: 6}
# Requests laid before verify took it over have a second purge pass, which still runs: its phase, and its params.
AFTER_REVOCATION = 2
SECOND_PASS = {"pass": 2}
OWN_RECORDS = "ownstory"  # the target of the forget step: Ownstory's own records of the person
SUBMIT_LOCK = 0x6F707473  # "opts": the advisory lock that serializes submissions on PostgreSQL


class OptOutError(ValueError):
    """The opt-out cannot be submitted as asked; the message is for the person."""


class AlreadyLeaving(Exception):
    """The person already has an open opt-out of this scope: nothing new was made. `request` is that one."""

    def __init__(self, request: OptOutRequest) -> None:
        super().__init__(f"opt-out {request.id} is already open")
        self.request = request


@dataclass(frozen=True)
class Submitted:
    request: OptOutRequest
    secret: str  # k, base64url: shown once in the status link, mailed, never stored

    @property
    def status_path(self) -> str:
        return f"/optout/{self.request.id}?k={self.secret}"


def identities_in_scope(user: User | None, grants: list[Grant], scope: str, email: str | None = None,
                        given: Sequence[Identity] = ()) -> Identities:
    """The identities an opt-out covers: everything of the person, or one network's accounts.

    `given` are identities another system named (the service API, /forget): they are covered too.
    """
    grants = [g for g in grants if scope == "all" or g.network == scope]
    everything = scope == "all"
    given = [i for i in given if everything or i.network == scope]
    # An account or a handle always names its network.
    accounts = {(g.network, g.account_id) for g in grants} | {
        (cast(str, i.network), i.value) for i in given if i.kind == "account"}
    handles = {(g.network, g.handle) for g in grants if g.handle} | {
        (cast(str, i.network), i.value) for i in given if i.kind == "handle"}
    return Identities(
        subject=user.id if user is not None and everything else None,
        email=(email or (user.email if user is not None else None)) if everything else None,
        accounts=tuple(sorted(accounts)),
        handles=tuple(sorted(handles)),
    )


def identity_list(ids: Identities) -> list[Identity]:
    found = [Identity("email", ids.email)] if ids.email else []
    found += [Identity("account", value, network) for network, value in ids.accounts]
    found += [Identity("handle", value, network) for network, value in ids.handles]
    return found


def entries_in_scope(ctx: ErasureContext, scope: str) -> list[Entry]:
    return [e for e in ctx.datamap.entries if scope == "all" or e.network == scope]


def submit(session: Session, ctx: ErasureContext, *, user: User | None, grants: list[Grant], scope: str,
           now: dt.datetime, email: str | None = None, reason_code: str | None = None,
           reason_text: str | None = None, source: str = "person", show_opted_out: bool = True,
           given: Sequence[Identity] = ()) -> Submitted:
    """Record an opt-out and everything that must happen at once. The caller commits.

    Raises AlreadyLeaving, making nothing, while the person has an open opt-out of this scope: a second
    press of the button, or a second call for the same identities, is the same wish, not a new one.
    """
    if reason_code is not None and reason_code not in REASONS:
        raise OptOutError("Choose one of the listed reasons, or none.")
    reason_text = (reason_text or "").strip()[:MAX_REASON_TEXT] or None
    lock(session)

    ids = identities_in_scope(user, grants, scope, email, given)
    identities = identity_list(ids)
    already = open_request(session, ctx.peppers, user=user, scope=scope, identities=identities)
    if already is not None:
        log.info("opt-out %s is already open: a second submission made none", already.id)
        raise AlreadyLeaving(already)
    if scope != "all" and scope not in {g.network for g in grants} | {i.network for i in given}:
        raise OptOutError("That network is not connected, so there is nothing to leave there.")
    contact = ids.email or (user.email if user is not None else None)
    k = owner.new_secret()
    request = OptOutRequest(
        id=str(uuid.uuid4()), user_id=user.id if user is not None else None, scope=scope, source=source,
        status=RequestStatus.RECEIVED, reason_code=reason_code, reason_text=reason_text, show_opted_out=show_opted_out,
        requested_at=now, deadline=now + dt.timedelta(days=ctx.deadline_days),
        secret_hash=owner.secret_hash(k),
        subject_commitment=owner.commitment(k, [i.canonical() for i in identities]),
        owner_box=owner.seal_for_owner(k, [i.canonical() for i in identities]),
        identities_sealed=ctx.vault.seal(json.dumps({**_identities_json(ids), "contact": contact})),
        identity_kinds=_kinds(ids),
    )
    try:
        with session.begin_nested():  # the unique index holds where a caller forgot the lock
            session.add(request)
    except IntegrityError:
        already = open_request(session, ctx.peppers, user=user, scope=scope, identities=())
        if already is None:
            raise
        raise AlreadyLeaving(already) from None

    # Consent stops counting now, before anything is purged.
    if user is not None:
        consent_service.withdraw_all(session, user.id, now, "optout", network=None if scope == "all" else scope)
    listed = identities + ([Identity("subject", ids.subject)] if ids.subject else [])
    suppress(session, ctx.peppers, listed, scope, request.id, show_opted_out)

    in_scope = [g for g in grants if scope == "all" or g.network == scope]
    _lay_steps(session, ctx, request, in_scope, scope, now, has_email=bool(contact))
    # The grants leave at once, their sealed tokens moving to the revoke steps: the person can
    # connect the same account again right away, while the old tokens are revoked.
    if in_scope:
        session.execute(delete(Grant).where(Grant.id.in_([g.id for g in in_scope])))
    if user is not None and scope == "all":
        _close_account(user, now)
    session.flush()
    log.info("opt-out %s submitted: scope %s, %d steps", request.id, scope if scope == "all" else "network",
             len(request.steps))
    return Submitted(request, b64url(k))


def lock(session: Session, user_id: str | None = None) -> None:
    """Serialize submissions, so that "is one open already?" and making one are a single step.

    SQLite: the write lock. PostgreSQL: an advisory lock, since a person named only by identities
    (the service API, /forget) has no row to lock; and the person's row, which a connect locks too
    (consent.connect.account_closing), so that the grants read next include any it just stored.
    Call before the transaction's first read, and again with the user once they are known.
    """
    write_lock(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": SUBMIT_LOCK})
        if user_id is not None:
            session.execute(select(User.id).where(User.id == user_id).with_for_update())


def open_request(session: Session, peppers: Peppers, *, user: User | None, scope: str,
                 identities: Sequence[Identity]) -> OptOutRequest | None:
    """The person's open opt-out of this scope, if there is one: found by their account, or else when
    every identity named is on the suppression list under an open request of this scope (the list keeps
    HMACs only, so this is the one way to know a person who has no account, or whose account is closing)."""
    if user is not None:
        mine = session.scalar(select(OptOutRequest).where(
            OptOutRequest.user_id == user.id, OptOutRequest.scope == scope,
            OptOutRequest.status.in_(OPEN_REQUESTS)))
        if mine is not None:
            return mine
    if not identities:
        return None
    entries = lookup(session, peppers, identities)
    listed_by = {e.request_id if e is not None else None for e in entries}
    if None in listed_by:
        return None  # an identity no opt-out lists: this is a new request
    found = list(session.scalars(
        select(OptOutRequest)
        .where(OptOutRequest.id.in_(listed_by), OptOutRequest.scope == scope, OptOutRequest.status.in_(OPEN_REQUESTS))
        .order_by(OptOutRequest.requested_at.desc())))
    if len(found) != len(listed_by):
        return None  # some identity's last opt-out is finished (or of another scope): it must run again
    return found[0]


def open_scopes(session: Session, user_id: str) -> list[str]:
    """The scopes the person has an open opt-out of."""
    return list(session.scalars(select(OptOutRequest.scope).where(
        OptOutRequest.user_id == user_id, OptOutRequest.status.in_(OPEN_REQUESTS))))


def _close_account(user: User, now: dt.datetime) -> None:
    """Free the email at once, so the person can sign up again straight away; the row goes later.
    A closed account connects no network (consent.connect), so no new token can come in behind the opt-out."""
    user.closed_at = now
    user.email = f"left-{user.id}@ownstory.invalid"
    user.password_hash = "!"  # noqa: S105 (not a password: a hash that matches none)
    user.session_version = User.session_version + 1  # every session of the account ends, copies of its cookie too


def _lay_steps(session: Session, ctx: ErasureContext, request: OptOutRequest, grants: list[Grant], scope: str,
               now: dt.datetime, has_email: bool) -> None:
    steps: list[tuple[StepKind, str, dict]] = [(StepKind.REVOKE, g.network, _revoke_params(g)) for g in grants]
    for store, entries in _by_store(entries_in_scope(ctx, scope)).items():  # one step purges a store's entries
        steps.append((StepKind.PURGE, store, {"store": store, "entries": [e.key for e in entries],
                                              "categories": list(dict.fromkeys(e.category for e in entries))}))
    steps.append((StepKind.FORGET, OWN_RECORDS, {}))
    steps.append((StepKind.VERIFY, "all stores", {}))
    steps.append((StepKind.RECEIPT, "transparency log", {}))
    if has_email:
        steps.append((StepKind.NOTIFY, "email", {}))
    # What a token lets in until its revocation is confirmed is verify's to purge: no second purge pass.
    laid = sorted(((PHASES[kind], kind, target, params) for kind, target, params in steps),
                  key=lambda step: step[0])  # positions in phase order, as the status page lists them
    for position, (phase, kind, target, params) in enumerate(laid, start=1):
        request.steps.append(ErasureStep(position=position, phase=phase, kind=kind, target=target,
                                         params=params, status=StepStatus.PENDING, not_before=now))


def second_pass(step: ErasureStep) -> bool:
    """Whether a purge step is the one that runs again once every revocation is confirmed (laid before verify
    took that over: such requests may still be open)."""
    return step.kind == StepKind.PURGE and (step.params or {}).get("pass") == SECOND_PASS["pass"]


def _by_store(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Entries grouped by their store, in the data map's order."""
    grouped: dict[str, list[Entry]] = {}
    for entry in entries:
        grouped.setdefault(entry.store, []).append(entry)
    return grouped


def lay_revocations(session: Session, request_id: str, grants: Sequence[Grant | Row], now: dt.datetime) -> None:
    """Revoke steps for grants found after the request was laid (a connect that raced the opt-out): Grants,
    or the rows of the grants table a DELETE ... RETURNING gave back.

    They are phase 1, so every step of a later phase not yet done (verify, the receipt) waits for them,
    and the receipt lists them; verify purges what their tokens let in. The caller deletes the grants in the
    same transaction.
    """
    last = session.scalar(select(func.max(ErasureStep.position)).where(ErasureStep.request_id == request_id)) or 0
    for position, g in enumerate(grants, start=last + 1):
        session.add(ErasureStep(request_id=request_id, position=position, phase=PHASES[StepKind.REVOKE],
                                kind=StepKind.REVOKE, target=g.network, params=_revoke_params(g),
                                status=StepStatus.PENDING, not_before=now))


def _revoke_params(g: Grant | Row) -> dict:
    params = {"account_id": g.account_id, "access_token": _b64(g.access_token), "refresh_token": _b64(g.refresh_token)}
    if g.expires_at is not None:  # a network that cannot revoke access tokens: they end by themselves
        params["access_expires_at"] = iso_utc(g.expires_at)
    return params


def _b64(sealed: bytes | None) -> str | None:
    return base64.b64encode(sealed).decode() if sealed else None


def _identities_json(ids: Identities) -> dict:
    return {"subject": ids.subject, "email": ids.email, "accounts": [list(a) for a in ids.accounts],
            "handles": [list(h) for h in ids.handles]}


def _kinds(ids: Identities) -> dict:
    return {k: n for k, n in (("email", int(bool(ids.email))), ("account", len(ids.accounts)),
                              ("handle", len(ids.handles)), ("subject", int(bool(ids.subject)))) if n}


def open_identities(ctx: ErasureContext, request: OptOutRequest) -> Identities | None:
    if request.identities_sealed is None:
        return None
    raw = json.loads(ctx.vault.open(request.identities_sealed))
    return Identities(subject=raw["subject"], email=raw["email"],
                      accounts=tuple(tuple(a) for a in raw["accounts"]),
                      handles=tuple(tuple(h) for h in raw["handles"]))


def open_contact(ctx: ErasureContext, request: OptOutRequest) -> str | None:
    """Where to mail the person about this request, while the request still holds it."""
    if request.identities_sealed is None:
        return None
    return json.loads(ctx.vault.open(request.identities_sealed)).get("contact")


def find_request(session: Session, request_id: str, k_text: str | None) -> OptOutRequest | None:
    """The request behind a status link, or None: a wrong k and an unknown id look the same."""
    import hmac

    k = owner.parse_secret(k_text)
    try:
        uuid.UUID(request_id)
    except ValueError:
        return None
    request = session.scalar(select(OptOutRequest).where(OptOutRequest.id == request_id))
    if request is None or k is None or not hmac.compare_digest(request.secret_hash, owner.secret_hash(k)):
        return None
    return request
