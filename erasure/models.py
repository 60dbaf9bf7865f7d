"""Opt-out requests, their erasure steps (the workers' queue), receipts, the transparency log, /forget's
one-time email links and the retention sweeps."""
from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, timestamp, uuid_pk


class RequestStatus(enum.StrEnum):
    """Where an opt-out request stands, derived from its steps (engine.worker.settle)."""

    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    NEEDS_ATTENTION = "needs_attention"  # a step used up its quick retries, or the deadline is near


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # leased to a worker
    DONE = "done"
    RETRYING = "retrying"
    NEEDS_ATTENTION = "needs_attention"  # still retried, and shown to the operators


class StepKind(enum.StrEnum):
    """What a step does, in the order a request's steps run."""

    REVOKE = "revoke"  # end our access at a network (target: the network key)
    PURGE = "purge"  # delete the person's items from one store, entry by entry (target: the store; before
    # issue 17, one step per entry, target "store/category")
    FORGET = "forget"  # delete Ownstory's own records of the person (target: "ownstory")
    VERIFY = "verify"  # count again: nothing of the person is left in any store
    RECEIPT = "receipt"  # sign the deletion receipt and add it to the transparency log
    NOTIFY = "notify"  # mail the person the outcome


# The groups the code asks about. Open requests are listed most urgent first, as the operators see them.
OPEN_REQUESTS = (RequestStatus.NEEDS_ATTENTION, RequestStatus.IN_PROGRESS, RequestStatus.RECEIVED)
FAILING_STEPS = (StepStatus.RETRYING, StepStatus.NEEDS_ATTENTION)
RUNNABLE_STEPS = (StepStatus.PENDING, *FAILING_STEPS)  # a worker may claim these once they are due
UNFINISHED_STEPS = (StepStatus.PENDING, StepStatus.RUNNING, *FAILING_STEPS)


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


ONE_OPEN_WHERE = f"user_id IS NOT NULL AND {_in('status', OPEN_REQUESTS)}"
RUNNING_WHERE = f"status = '{StepStatus.RUNNING}'"


class OptOutRequest(Base):
    """A person leaving one network or everything. It outlives their account, holding no personal
    data in the clear: identities are sealed until the request completes, then dropped."""

    __tablename__ = "optout_requests"
    __table_args__ = (
        CheckConstraint(_in("status", RequestStatus), name="status"),
        CheckConstraint("deadline > requested_at", name="deadline_after_request"),
        Index("ix_optout_requests_status_deadline", "status", "deadline"),
        Index("ix_optout_requests_requested_at", "requested_at"),
        Index("ix_optout_requests_completed_at", "completed_at", "requested_at", "deadline"),
        # One open opt-out per person and scope: a second press of "Opt out now" cannot race past it.
        Index("uq_optout_requests_one_open", "user_id", "scope", unique=True,
              sqlite_where=text(ONE_OPEN_WHERE), postgresql_where=text(ONE_OPEN_WHERE)),
    )

    id: Mapped[uuid_pk]
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    scope: Mapped[str] = mapped_column(String(64))  # "all" or a network key
    source: Mapped[str] = mapped_column(String(16), default="person")  # person | service | forget | agent
    status: Mapped[str] = mapped_column(String(20), default=RequestStatus.RECEIVED)
    reason_code: Mapped[str | None] = mapped_column(String(32))
    reason_text: Mapped[str | None] = mapped_column(Text)  # free text; cleared when the request completes
    show_opted_out: Mapped[bool] = mapped_column(default=True)
    requested_at: Mapped[timestamp]
    deadline: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    secret_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the capability k; k itself is never kept
    subject_commitment: Mapped[str] = mapped_column(String(64))
    identities_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # Vault-sealed JSON; None once done
    identity_kinds: Mapped[dict] = mapped_column(JSON, default=dict)  # {"email": 1, "account": 2}: counts only
    receipt_id: Mapped[str | None] = mapped_column(String(36))
    # The identities, sealed under a key derived from k: only the person's link can open them,
    # to prove the receipt is theirs. The service cannot read them once `identities_sealed` is gone.
    owner_box: Mapped[bytes | None] = mapped_column(LargeBinary)

    steps: Mapped[list[ErasureStep]] = relationship(
        back_populates="request", order_by="ErasureStep.position", cascade="all, delete-orphan")


class ErasureStep(Base):
    """One unit of erasure work, claimed by a worker with a lease and finished fenced.

    Steps of a request run phase by phase: a step waits until every step with a lower
    phase is done. Every step is idempotent, so a step that runs twice does no harm.
    """

    __tablename__ = "erasure_steps"
    __table_args__ = (
        CheckConstraint(_in("status", StepStatus), name="status"),
        CheckConstraint(_in("kind", StepKind), name="kind"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        UniqueConstraint("request_id", "position", name="uq_erasure_steps_request_position"),
        Index("ix_erasure_steps_claim", "status", "not_before"),
        # The running steps whose lease ran out (their worker died), for the claim to take over: a range scan
        # that reads only those. ix_erasure_steps_claim holds every running step, and every version of one
        # each claim and heartbeat leaves until vacuum, all read by every claim to find the few expired.
        Index("ix_erasure_steps_lease", "lease_expires_at", sqlite_where=text(RUNNING_WHERE),
              postgresql_where=text(RUNNING_WHERE)),
        Index("ix_erasure_steps_request_phase", "request_id", "phase", "status"),
        Index("ix_erasure_steps_target_kind", "target", "kind", "request_id"),
    )

    id: Mapped[uuid_pk]
    request_id: Mapped[str] = mapped_column(ForeignKey("optout_requests.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    phase: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # a StepKind
    target: Mapped[str] = mapped_column(String(255))  # what the step acts on: see StepKind
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # e.g. the grant id; never personal data
    status: Mapped[str] = mapped_column(String(20), default=StepStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[timestamp]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None]
    done_at: Mapped[dt.datetime | None]
    result: Mapped[dict] = mapped_column(JSON, default=dict)  # outcome and counts, shown to the person

    request: Mapped[OptOutRequest] = relationship(back_populates="steps")


class ErasureHold(Base):
    """A network (its revocations) or a store's service (its purges) asked us to wait, with a Retry-After, until
    `until`. The worker that was told moves the steps due there (queue.hold); every other worker reads the hold
    here (queue.holds) and puts back what it claims there meanwhile, rather than ask again and be told again."""

    __tablename__ = "erasure_holds"
    __table_args__ = (CheckConstraint(_in("kind", StepKind), name="kind"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # a StepKind: revoke or purge
    target: Mapped[str] = mapped_column(String(255), primary_key=True)  # the network's key, or the store's name
    until: Mapped[timestamp]


class SigningKey(Base):
    """An Ed25519 key: receipt keys rotate (every one ever used stays published); the log key is long-lived.

    The private key is sealed with OWNSTORY_TOKEN_KEYS (MultiFernet), never stored in the clear.
    """

    __tablename__ = "signing_keys"
    __table_args__ = (
        CheckConstraint("purpose IN ('receipt', 'log')", name="purpose"),
        Index("uq_signing_keys_one_current", "purpose", unique=True, sqlite_where=text("retired_at IS NULL"),
              postgresql_where=text("retired_at IS NULL")),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)  # RFC 7638 thumbprint
    purpose: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    private_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[timestamp]
    retired_at: Mapped[dt.datetime | None]


class Receipt(Base):
    """A signed deletion receipt: exactly one per opt-out request, and one leaf in the log."""

    __tablename__ = "receipts"
    __table_args__ = (Index("ix_receipts_issued_at", "issued_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("optout_requests.id", ondelete="RESTRICT"), unique=True)
    kid: Mapped[str] = mapped_column(ForeignKey("signing_keys.kid", ondelete="RESTRICT"))
    jws: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[timestamp]
    leaf_index: Mapped[int] = mapped_column(Integer, unique=True)


class PooledReceipt(Base):
    """A signed receipt waiting for the log's sequencer, which appends the pool as leaves in `seq` order and
    moves each one to receipts with its leaf (erasure/receipts/sequencer.py)."""

    __tablename__ = "receipt_pool"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receipt_id: Mapped[str] = mapped_column(String(36), unique=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("optout_requests.id", ondelete="RESTRICT"), unique=True)
    kid: Mapped[str] = mapped_column(ForeignKey("signing_keys.kid", ondelete="RESTRICT"))
    jws: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[timestamp]


class LogSequencer(Base):
    """The one row (id 1) whose lease elects the log's sequencer among every worker: one at a time."""

    __tablename__ = "log_sequencer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    held_by: Mapped[str | None] = mapped_column(String(100))
    held_until: Mapped[dt.datetime | None]


class LogNode(Base):
    """A complete subtree of the transparency log: level 0 are the leaves' hashes.

    Node (level, index) covers leaves [index * 2**level, (index + 1) * 2**level), so any root
    or proof is composed from O(log n) of these rows, never recomputed from all leaves.
    """

    __tablename__ = "log_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class Checkpoint(Base):
    """Every checkpoint the log ever signed; any two are consistent, because appends are serialized."""

    __tablename__ = "checkpoints"

    tree_size: Mapped[int] = mapped_column(Integer, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[timestamp]


class EmailProof(Base):
    """A one-time link mailed to an address. Only the SHA-256 of its token is kept, and the address
    is sealed under a key derived from the token: the database alone cannot read it, nor use the link."""

    __tablename__ = "email_proofs"
    __table_args__ = (
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        Index("ix_email_proofs_expires_at", "expires_at"),
    )

    id: Mapped[uuid_pk]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    address_box: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[timestamp]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


SWEEP_STATUSES = ("running", "done", "partial", "failed", "abandoned")


class RetentionSweep(Base):
    """One sweep: who ran it, when, and the rows it purged per data-map entry. Never personal data."""

    __tablename__ = "retention_sweeps"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'done', 'partial', 'failed', 'abandoned')", name="status"),
        CheckConstraint("rows >= 0", name="rows_non_negative"),
        Index("uq_retention_sweeps_one_running", "status", unique=True, sqlite_where=text("status = 'running'"),
              postgresql_where=text("status = 'running'")),
        Index("ix_retention_sweeps_started_at", "started_at"),
    )

    id: Mapped[uuid_pk]
    status: Mapped[str] = mapped_column(String(16), default="running")
    owner: Mapped[str] = mapped_column(String(64))  # the worker: host:pid:random
    started_at: Mapped[timestamp]
    lease_expires_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    rows: Mapped[int] = mapped_column(Integer, default=0)
    # [{"store", "table", "column", "category", "past_retention", "expired_grant", "reappeared", "rows"}]; an entry
    # of another kind than sql names itself by what its store's describe() says instead of table and column.
    entries: Mapped[list] = mapped_column(JSON, default=list)
    errors: Mapped[list] = mapped_column(JSON, default=list)  # [{"store", "table", "column", "reason", "error"}]
