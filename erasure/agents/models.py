"""Authorized agents of the Data Rights Protocol: the agents, their bearer tokens, their requests, the signed
messages already accepted (against replay) and the status callbacks waiting to be sent."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, exists
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, timestamp, uuid_pk
from erasure.models import OptOutRequest

# DRP 1.0 section 3.02: the states, and the reasons that go with them.
STATUSES = ("open", "in_progress", "fulfilled", "revoked", "denied", "expired")
FINAL = ("fulfilled", "revoked", "denied", "expired")
REASONS = ("need_user_verification", "suspected_fraud", "insuf_verification", "no_match", "claim_not_covered",
           "outside_jurisdiction", "too_many_requests", "other")
EXERCISES = ("sale:opt-out", "sale:opt-in", "deletion", "access")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class AuthorizedAgent(Base):
    """An agent an operator registered: every request of theirs is checked against this Ed25519 verify key."""

    __tablename__ = "drp_agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the DRP agent-id
    name: Mapped[str] = mapped_column(String(200))
    verify_key: Mapped[bytes] = mapped_column(LargeBinary)  # 32 bytes, raw Ed25519
    created_at: Mapped[timestamp]
    disabled_at: Mapped[dt.datetime | None]


class AgentToken(Base):
    """A bearer token from the pairwise key setup. Only its SHA-256 is kept."""

    __tablename__ = "drp_agent_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("drp_agents.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[timestamp]


class AgentRequest(Base):
    """One Data Rights Request from an agent. A deletion points at the opt-out it became; the claims are
    sealed (OWNSTORY_TOKEN_KEYS) only while they are needed, and dropped once the request is final."""

    __tablename__ = "drp_requests"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("exercise", EXERCISES), name="exercise"),
        CheckConstraint(f"reason IS NULL OR {_in('reason', REASONS)}", name="reason"),
        Index("ix_drp_requests_agent_received", "agent_id", "received_at"),
        Index("ix_drp_requests_status", "status"),
    )

    id: Mapped[uuid_pk]  # the DRP request_id
    agent_id: Mapped[str] = mapped_column(ForeignKey("drp_agents.id", ondelete="RESTRICT"))
    agent_request_id: Mapped[str | None] = mapped_column(String(255))
    exercise: Mapped[str] = mapped_column(String(16))
    regime: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    reason: Mapped[str | None] = mapped_column(String(32))
    processing_details: Mapped[str | None] = mapped_column(Text)
    status_callback: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[timestamp]
    expected_by: Mapped[dt.datetime]
    optout_request_id: Mapped[str | None] = mapped_column(
        ForeignKey("optout_requests.id", ondelete="SET NULL"), index=True)
    claims_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    verify_until: Mapped[dt.datetime | None]  # while waiting for the person's own proof of control
    results_expires_at: Mapped[dt.datetime | None]  # an access request's one-time results_url
    results_used_at: Mapped[dt.datetime | None]
    updated_at: Mapped[timestamp]

    optout_request: Mapped[OptOutRequest | None] = relationship()


def sent_through(agent_id: str):
    """The condition on OptOutRequest for an opt-out this agent asked for (the dashboard's and the API's filter)."""
    return exists().where(AgentRequest.optout_request_id == OptOutRequest.id, AgentRequest.agent_id == agent_id)


class SeenMessage(Base):
    """A signed message already accepted, by the SHA-256 of its bytes, kept until it expires: a replay is refused."""

    __tablename__ = "drp_seen_messages"
    __table_args__ = (Index("ix_drp_seen_messages_expires_at", "expires_at"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime]


class StatusCallback(Base):
    """One status change to POST to an agent's status_callback, retried with backoff by the worker."""

    __tablename__ = "drp_callbacks"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'sent', 'superseded', 'failed')", name="state"),
        Index("ix_drp_callbacks_due", "state", "not_before"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("drp_requests.id", ondelete="CASCADE"), index=True)
    body: Mapped[dict] = mapped_column(JSON)  # the Exercise Status object at the change
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[timestamp]
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[timestamp]
