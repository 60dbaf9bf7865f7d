"""The agents an operator registers, the bearer tokens of their pairwise key setups, and the replay check."""
from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.security import token_hash
from erasure.agents.models import AgentToken, AuthorizedAgent, SeenMessage
from erasure.agents.signing import MessageError, SignedMessage, open_message

AGENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # the directory's ids are [A-Z_]+; a little more is harmless
TOKEN_PREFIX = "drp_"  # noqa: S105 (a prefix that tells a DRP token at a glance, not a secret)


class RegistryError(ValueError):
    """An agent cannot be registered or changed as asked; the message is for the operator."""


def parse_verify_key(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise RegistryError("--verify-key must be the Ed25519 verify key in hex (64 hex digits)") from None
    if len(raw) != 32:
        raise RegistryError(f"--verify-key must be 32 bytes (64 hex digits), not {len(raw)}")
    return raw


def register(session: Session, agent_id: str, verify_key_hex: str, name: str, now: dt.datetime) -> AuthorizedAgent:
    """Record an agent. Registering an id again replaces its key and name and enables it again. The caller commits."""
    if not AGENT_ID.fullmatch(agent_id):
        raise RegistryError("--id is 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-'")
    name = name.strip()
    if not name or len(name) > 200:
        raise RegistryError("--name is 1 to 200 characters")
    key = parse_verify_key(verify_key_hex)
    agent = session.get(AuthorizedAgent, agent_id)
    if agent is None:
        agent = AuthorizedAgent(id=agent_id, name=name, verify_key=key, created_at=now)
        session.add(agent)
    else:
        if agent.verify_key != key:  # a new key: tokens set up with the old one end
            session.execute(delete(AgentToken).where(AgentToken.agent_id == agent_id))
        agent.name, agent.verify_key, agent.disabled_at = name, key, None
    session.flush()
    return agent


def disable(session: Session, agent_id: str, now: dt.datetime) -> AuthorizedAgent:
    """Refuse the agent from now on: its tokens end at once. The caller commits."""
    agent = session.get(AuthorizedAgent, agent_id)
    if agent is None:
        raise RegistryError(f"no agent with the id {agent_id!r}")
    agent.disabled_at = agent.disabled_at or now
    session.execute(delete(AgentToken).where(AgentToken.agent_id == agent_id))
    session.flush()
    return agent


def listed(session: Session) -> list[AuthorizedAgent]:
    return list(session.scalars(select(AuthorizedAgent).order_by(AuthorizedAgent.id)))


def enabled(session: Session, agent_id: str) -> AuthorizedAgent | None:
    agent = session.get(AuthorizedAgent, agent_id) if AGENT_ID.fullmatch(agent_id or "") else None
    return agent if agent is not None and agent.disabled_at is None else None


def key_setup(session: Session, agent_id: str, body: bytes, business_id: str, now: dt.datetime) -> str:
    """DRP 2.05: check the signed message with the agent's key and hand out a fresh bearer token (kept as a hash).

    Raises MessageError; the caller answers any failure with a bare 403, as the specification says.
    """
    agent = enabled(session, agent_id)
    if agent is None:
        raise MessageError(403, "no such agent")
    signed = open_message(body, agent.verify_key, agent_id=agent.id, business_id=business_id, now=now)
    remember(session, signed, now)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(AgentToken(token_hash=token_hash(token), agent_id=agent.id, created_at=now))
    session.flush()
    return token


def agent_of_token(session: Session, token: str | None) -> AuthorizedAgent | None:
    """The enabled agent a bearer token belongs to, or None."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = session.get(AgentToken, token_hash(token))
    if row is None or not hmac.compare_digest(row.token_hash, token_hash(token)):
        return None
    return enabled(session, row.agent_id)


def remember(session: Session, signed: SignedMessage, now: dt.datetime) -> None:
    """Accept a signed message once: its hash is kept until it expires, and a second sending is refused (409).

    Expired hashes are dropped on the way: an expired message is refused by its time anyway.
    """
    session.execute(delete(SeenMessage).where(SeenMessage.expires_at <= now))
    try:
        with session.begin_nested():
            session.add(SeenMessage(digest=signed.digest, expires_at=signed.expires_at))
    except IntegrityError:
        raise MessageError(409, "This signed message was already received; sign a new one to ask again.") from None
