"""A Data Rights Request's fields (DRP 1.0 section 2.01) and identity claims (section 3.04), read strictly.

Ownstory matches people by email address and by network account, as /forget does. The specification's
`email` comes with `email_verified`; network accounts are a claim of Ownstory's own, documented in the
README and the OpenAPI document:

    "network_accounts": [{"network": "demo", "account_id": "123", "verified": true}]

A claim the agent has not verified is never acted on by itself: the request waits for the person's own
proof of control, as /forget asks for it (a one-time email link, or signing in at the network). Phone numbers
and addresses are read but match nothing: Ownstory holds none.
"""
from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from app.accounts import normalize_email
from consent.suppression import Identity
from erasure.agents.models import EXERCISES
from erasure.agents.signing import VERSION, MessageError

MAX_ACCOUNTS = 20


@dataclass(frozen=True)
class Claims:
    """Who the request is about: what the agent verified, and what it did not."""

    verified: tuple[Identity, ...] = ()
    unverified: tuple[Identity, ...] = ()
    unmatched: tuple[str, ...] = field(default=())  # claims read that Ownstory has nothing to match with

    @property
    def unverified_email(self) -> str | None:
        return next((i.value for i in self.unverified if i.kind == "email"), None)

    @property
    def unverified_networks(self) -> tuple[str, ...]:
        """The networks of the accounts the agent did not verify, each once, in the order claimed."""
        return tuple(dict.fromkeys(i.network for i in self.unverified if i.kind == "account" and i.network))

    def awaits_account(self, network: str, account_id: str) -> bool:
        """Whether the agent named this account without verifying it: its proof is what the request waits for."""
        return Identity("account", account_id, network) in self.unverified

    def to_json(self) -> str:
        return json.dumps({"verified": [[i.kind, i.value, i.network] for i in self.verified],
                           "unverified": [[i.kind, i.value, i.network] for i in self.unverified]})

    @classmethod
    def from_json(cls, text: str) -> Claims:
        raw = json.loads(text)
        return cls(tuple(Identity(*i) for i in raw["verified"]), tuple(Identity(*i) for i in raw["unverified"]))


@dataclass(frozen=True)
class Exercise:
    exercise: str
    regime: str | None
    agent_request_id: str | None
    status_callback: str | None
    claims: Claims


def _error(message: str) -> MessageError:
    return MessageError(400, message)


def _text(message: dict, name: str, limit: int) -> str | None:
    value = message.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise _error(f"{name} is not a string of 1 to {limit} characters.")
    return value


def _flag(message: dict, name: str) -> bool:
    value = message.get(name, False)
    if value is not True and value is not False:
        raise _error(f"{name} is not true or false.")
    return value


def read_exercise(message: dict, networks: Collection[str]) -> Exercise:
    """The request's fields, checked. Raises MessageError (400) naming the first field that is wrong."""
    if message.get("drp.version") != VERSION:
        raise _error(f'drp.version must be "{VERSION}".')
    exercise = message.get("exercise")
    if exercise not in EXERCISES:
        raise _error(f"Unsupported rights actions submitted: exercise must be one of {', '.join(EXERCISES)}.")
    callback = _text(message, "status_callback", 2000)
    if callback is not None:
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _error("status_callback is not an http(s) URL.")
    relationships = message.get("relationships", [])
    if not isinstance(relationships, list) or not all(isinstance(r, str) for r in relationships):
        raise _error("relationships is not a list of strings.")
    return Exercise(exercise=exercise, regime=_text(message, "regime", 32),
                    agent_request_id=_text(message, "agent-request-id", 255), status_callback=callback,
                    claims=read_claims(message, networks))


def read_claims(message: dict, networks: Collection[str]) -> Claims:
    verified: list[Identity] = []
    unverified: list[Identity] = []
    unmatched = [name for name in ("phone_number", "address", "name") if message.get(name)]
    email = _text(message, "email", 320)
    if email is not None:
        if "@" not in email:
            raise _error("email is not an email address.")
        (verified if _flag(message, "email_verified") else unverified).append(Identity("email", normalize_email(email)))
    accounts = message.get("network_accounts", [])
    if not isinstance(accounts, list) or len(accounts) > MAX_ACCOUNTS:
        raise _error(f"network_accounts is not a list of at most {MAX_ACCOUNTS} accounts.")
    for n, account in enumerate(accounts):
        if not isinstance(account, dict) or set(account) - {"network", "account_id", "verified"}:
            raise _error(f'network_accounts[{n}] is not {{"network", "account_id", "verified"}}.')
        if account.get("network") not in networks:
            raise _error(f"network_accounts[{n}].network is not a network this service knows.")
        account_id = _text(account, "account_id", 255)
        if account_id is None:
            raise _error(f"network_accounts[{n}].account_id is missing.")
        identity = Identity("account", account_id, account["network"])
        (verified if _flag(account, "verified") else unverified).append(identity)
    return Claims(tuple(verified), tuple(unverified), tuple(unmatched))
