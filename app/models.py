"""Accounts: the people, operators and auditors who sign in, the API tokens of programs, and the audit trail."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, timestamp, uuid_pk

USER_ROLES = ("person", "operator", "auditor")
TOKEN_ROLES = ("operator", "auditor", "service")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('person', 'operator', 'auditor')", name="role"),)

    id: Mapped[uuid_pk]  # also the person's Ownstory subject id
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="person")
    created_at: Mapped[timestamp]
    last_login_at: Mapped[dt.datetime | None]
    # Set when the person asks to leave everything: the account takes no new network from then on,
    # and its row goes with the opt-out's forget step.
    closed_at: Mapped[dt.datetime | None]
    # Raised by signing out and by leaving; a session cookie carries the value it was issued with (app.auth).
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # Flask-Login's interface.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.id


class ApiToken(Base):
    """A program's bearer token. Only the SHA-256 of the token is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("role IN ('operator', 'auditor', 'service')", name="role"),)

    id: Mapped[uuid_pk]
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[timestamp]
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


ACTOR_KINDS = ("person", "operator", "auditor", "service", "anonymous", "system")


class AuditEvent(Base):
    """One entry of the audit trail; `hash` covers every other field and the entry before."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("actor_kind IN ('person', 'operator', 'auditor', 'service', 'anonymous', 'system')",
                        name="actor_kind"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[dt.datetime]
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))  # a user or token id; never an email or token
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))  # an id or a route, never personal data
    outcome: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
