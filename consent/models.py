"""Grants (network access a person gave), the consent ledger with its materialized state, the suppression
list's entries and the Global Privacy Control signals on record."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, timestamp, uuid_pk


class Grant(Base):
    """A network account a person connected: what the platform may reach, since when, and its tokens.

    Tokens are sealed by app.security.Vault; the columns never hold them in plain text.
    One network account belongs to at most one person.
    """

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint("network", "account_id", name="uq_grants_network_account"),
        Index("ix_grants_network_handle", "network", "handle"),
    )

    id: Mapped[uuid_pk]
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    network: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(String(255))
    handle: Mapped[str | None] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(Text, default="")  # space-separated, as OAuth gives them
    granted_at: Mapped[timestamp]
    access_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_type: Mapped[str] = mapped_column(String(32), default="Bearer")
    expires_at: Mapped[dt.datetime | None]

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class ConsentEvent(Base):
    """One entry of a person's append-only, hash-chained consent ledger.

    `hash` = SHA-256 over the previous entry's hash and this entry's canonical fields
    (see consent.ledger). (subject_id, seq) is unique, so the chain cannot fork.
    """

    __tablename__ = "consent_events"
    __table_args__ = (
        UniqueConstraint("subject_id", "seq", name="uq_consent_events_subject_seq"),
        CheckConstraint("action IN ('grant', 'withdraw')", name="action"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    network: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))  # form | api | gpc | optout
    at: Mapped[timestamp]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ConsentState(Base):
    """The current consent per (subject, network, purpose): materialized from the ledger.

    `flask consent verify-ledger` replays the ledger and checks these rows against it.
    """

    __tablename__ = "consent_state"
    __table_args__ = (CheckConstraint("status IN ('granted', 'withdrawn')", name="status"),)

    subject_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[int] = mapped_column(ForeignKey("consent_events.id", ondelete="RESTRICT"))
    updated_at: Mapped[timestamp]


class Suppression(Base):
    """One opted-out identity. `key_id` names the pepper that made `digest`, so peppers can rotate."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("key_id", "digest", name="uq_suppressions_key_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(64))  # "all", or the one network the person left
    show_opted_out: Mapped[bool] = mapped_column(default=True)
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)  # the opt-out that listed it
    created_at: Mapped[timestamp]


class GpcSignal(Base):
    """A person whose browser sends Global Privacy Control, since when; it goes when the signal stops."""

    __tablename__ = "gpc_signals"

    subject_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    since: Mapped[timestamp]
