"""Deletion receipts: a signed JWS payload with no personal data, issued once per request and logged."""
from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import sys
import uuid
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.jwk import OKPKey
from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from app import driver
from app.db import dialect_insert, table_of
from app.text import ISO_UTC, b64url, b64url_decode, iso_utc
from erasure.context import ErasureContext
from erasure.engine import queue
from erasure.models import ErasureStep, OptOutRequest, PooledReceipt, Receipt, StepKind
from erasure.receipts import keys, sequencer, tlog
from erasure.verifier import owner

HEADER_TYPE = "ownstory-receipt+jws"
REENTRY = {
    "waiting_period_days": 0,
    "conditions": [],
    "statement": "You can come back at any time, starting now. Nothing about leaving is held against you.",
}
RETAINED = [
    {"what": "suppression entry", "form": "HMAC-SHA256 of each identity",
     "why": "so that the opt-out holds if the data comes in again"},
    {"what": "consent withdrawal", "form": "the withdrawal events, filed under this request's id",
     "why": "so that the withdrawal can be proved without naming you"},
    {"what": "this request's record", "form": "ids, times, step outcomes and counts; no personal data",
     "why": "so that operators and auditors can show the deadline was kept"},
]


def payload(request: OptOutRequest, steps: list[ErasureStep], receipt_id: str, iss: str, now: dt.datetime) -> dict:
    """What the receipt says, from the steps' recorded outcomes: no personal data in it."""
    # Every step is done when its request's receipt is issued, so each has its done_at.
    revocations = [{"network": s.result.get("network", s.target), "outcome": s.result["outcome"],
                    "at": s.result.get("at") or iso_utc(cast(dt.datetime, s.done_at)),
                    # why it counts as revoked when the network could not revoke every token
                    **({"note": s.result["note"]} if s.result.get("note") else {})}
                   for s in steps if s.kind == StepKind.REVOKE]
    purged: dict[tuple[str, str], int] = {}
    for s in steps:  # the platform's rows only: what the forget step deletes, Ownstory's own records, is not listed
        if s.kind == StepKind.PURGE:  # a store's categories, or one category (a step laid before issue 17)
            for part in s.result.get("categories", [s.result]):
                key = (s.result.get("store", ""), part.get("category", ""))
                purged[key] = purged.get(key, 0) + int(part.get("rows", 0))
    verified = next((s for s in steps if s.kind == StepKind.VERIFY), None)
    for late in (verified.result.get("late_rows", []) if verified else []):  # written after the purge ran
        key = (late["store"], late["category"])
        purged[key] = purged.get(key, 0) + int(late["rows"])
    return {
        "v": 1,
        "receipt_id": receipt_id,
        "iss": iss,
        "iat": int(now.timestamp()),
        "request_id": request.id,
        "scope": request.scope,
        "subject_commitment": request.subject_commitment,
        "requested_at": iso_utc(request.requested_at),
        "deadline": iso_utc(request.deadline),
        "completed_at": iso_utc(verified.done_at if verified and verified.done_at else now),
        "revocations": revocations,
        "purged": [{"store": st, "category": cat, "rows": rows} for (st, cat), rows in purged.items()],
        "residual_rows": int(verified.result.get("residual_rows", 0)) if verified else 0,
        "retained": RETAINED,
        "reentry": REENTRY,
    }


def pool(session: Session, ctx: ErasureContext, request: OptOutRequest, now: dt.datetime) -> tuple[str, int] | None:
    """Sign the request's receipt into the log's pool, unless it is pooled or logged already; its
    (receipt id, leaf index) if a batch logged it already, else None (it waits in the pool). The caller
    holds the write lock and commits.

    The receipt goes in only if none of the request's is logged, and the pool holds one a request (its unique
    request_id): one statement the first time, which is nearly every time. When it does not go in, it is logged,
    or pooled by an earlier run of the step (or another run at the same moment): one more statement tells which.
    """
    signed = _signed(session, ctx, request, now)
    if driver.rows(session, _pool_statement(session.get_bind().dialect.name), signed):  # on the worker's path
        return None
    logged = session.execute(select(Receipt.id, Receipt.leaf_index).where(Receipt.request_id == request.id)).first()
    return (logged[0], logged[1]) if logged is not None else None


@functools.cache
def _pool_statement(dialect: str):
    """INSERT the signed receipt into the pool unless the request's receipt is logged or pooled, RETURNING its seq."""
    names = ("receipt_id", "request_id", "kid", "jws", "issued_at")
    pool_ = table_of(PooledReceipt)  # the table, not the class: no ORM bulk insert to set up
    logged = table_of(Receipt)
    values = select(*(bindparam(name, type_=pool_.c[name].type) for name in names)).where(
        ~exists().where(logged.c.request_id == bindparam("request_id", type_=pool_.c.request_id.type)))
    return (dialect_insert(dialect)(pool_).from_select(list(names), values).on_conflict_do_nothing()
            .returning(pool_.c.seq))


def _signed(session: Session, ctx: ErasureContext, request: OptOutRequest, now: dt.datetime) -> dict:
    steps = queue.steps_of(session, request.id)
    receipt_id = str(uuid.uuid4())
    claims = payload(request, steps, receipt_id, ctx.base_url, now)
    row, private = keys.current(session, ctx.vault, "receipt", now)
    header = {"alg": "Ed25519", "kid": row.kid, "typ": HEADER_TYPE}
    body = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    token = jws.serialize_compact(header, body, _jwk(private), algorithms=["Ed25519"])
    return {"receipt_id": receipt_id, "request_id": request.id, "kid": row.kid, "jws": token, "issued_at": now}


@functools.lru_cache(maxsize=8)
def _jwk(private: Ed25519PrivateKey) -> OKPKey:
    """The key as joserfc signs with it, made once per key: keys.current hands out the same object each time."""
    return OKPKey.import_key(private)


def issue_receipt(session: Session, ctx: ErasureContext, request: OptOutRequest, origin: str,
                  now: dt.datetime) -> Receipt:
    """Sign the request's receipt and log it at once, with whatever else is pooled, exactly once however often
    it is called: the oversight tools and tests' way. The worker's receipt step pools and hands off
    (engine/handoff.py).

    Takes the log's lock first, so a second caller waits, then finds the first one's receipt.
    The caller commits.
    """
    tlog.lock(session)
    existing = session.scalar(select(Receipt).where(Receipt.request_id == request.id))
    if existing is not None:
        return existing
    pool(session, ctx, request, now)
    sequencer.sequence_held(session, ctx.vault, origin, now, limit=sys.maxsize)
    if request in session:
        session.expire(request, ["receipt_id"])  # named by the batch's bulk update, which loaded objects miss
    return session.scalars(select(Receipt).where(Receipt.request_id == request.id)).one()


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, ISO_UTC).replace(tzinfo=dt.UTC)


def claims_of(receipt: Receipt) -> dict:
    body = receipt.jws.split(".")[1]
    return json.loads(b64url_decode(body))


def bundle(session: Session, receipt: Receipt, k: bytes | None = None, box: bytes | None = None) -> dict:
    """The bundle a person downloads: the receipt, inclusion proof to the latest checkpoint, owner proof with k."""
    checkpoint = tlog.latest_checkpoint(session)
    if checkpoint is None:  # cannot be: the receipt's own append wrote one
        raise tlog.LogError("the log has no checkpoint")
    proof = tlog.inclusion(session, receipt.leaf_index, checkpoint.tree_size)
    result = {"receipt": receipt.jws,
              "log": {"leaf_index": receipt.leaf_index, "tree_size": checkpoint.tree_size,
                      "inclusion": [base64.b64encode(h).decode() for h in proof], "checkpoint": checkpoint.note}}
    if k is not None and box is not None:
        identities = owner.open_for_owner(k, box)
        if identities is not None:
            result["owner_proof"] = {"salt": b64url(owner.salt(k)), "identities": sorted(identities)}
    return result
