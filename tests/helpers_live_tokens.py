"""Counting the tokens Demo Social still honours, by asking its own introspection endpoint (RFC 7662)."""
from __future__ import annotations

from contextlib import contextmanager

import requests
from sqlalchemy import select

from demo.models import Token
from tests.conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


def issued_tokens(demo_network, account: str | None = None) -> list[str]:
    """Every token string Demo Social ever issued to Ownstory's client (for an account, if given)."""
    state = demo_network.app.extensions["demo"]
    with state.db_lock, state.sessions() as db:
        rows = db.scalars(select(Token).where(Token.client_id == DEMO_CLIENT_ID))
        return [t for row in rows if account is None or row.account_id == account
                for t in (row.access_token, row.refresh_token) if t]


def introspected(demo_network, token: str) -> dict:
    """What Demo Social's introspection says of a token issued to Ownstory's client."""
    answer = requests.post(f"{demo_network.url}/oauth/introspect", data={"token": token},
                           auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def active(demo_network, token: str) -> bool:
    return introspected(demo_network, token)["active"] is True


def live_tokens(demo_network, account: str | None = None) -> int:
    """How many of the tokens issued to Ownstory the network would still accept."""
    return sum(active(demo_network, token) for token in issued_tokens(demo_network, account))


@contextmanager
def strict(demo_network, *flags: str):
    """Demo Social with some of its strict behaviours (demo/strict_tokens.py) on, for the length of a block."""
    config = demo_network.app.config
    for flag in flags:
        config[flag] = True
    try:
        yield
    finally:
        for flag in flags:
            config.pop(flag, None)
