"""Fixtures for the consent tests: connected networks, and purposes files for version bumps."""
from __future__ import annotations

import itertools

import pytest

from app.db import utcnow

_accounts = itertools.count(1001)


@pytest.fixture
def connect(app, vault):
    """Connect a network account to a person, the way the OAuth callback stores it."""
    from app.extensions import db
    from consent.grants import store_grant

    def make(user, network: str = "demo", account_id: str | None = None):
        account_id = account_id or str(next(_accounts))
        with app.app_context():
            grant = store_grant(db.session, vault, user.id,
                                app.extensions["networks"][network], {"access_token": "at-" + account_id},
                                {"sub": account_id, "preferred_username": "handle" + account_id}, utcnow())
            db.session.commit()
            return grant.account_id

    return make


@pytest.fixture
def person_at(make_app, make_person, login, tmp_path):
    """A signed-in person's test client on an app whose catalogue is `text`."""
    def build(text: str):
        path = tmp_path / "networks.toml"
        path.write_text(text)
        app = make_app(networks=path)
        client = app.test_client()
        login(client, make_person())
        return app, client
    return build


@pytest.fixture
def write_purposes(tmp_path):
    """Write a purposes TOML file and return its path, for make_app(purposes=path)."""
    counter = itertools.count(1)

    def write(text: str):
        path = tmp_path / f"purposes-{next(counter)}.toml"
        path.write_text(text)
        return path

    return write


PURPOSES_V1 = """
[purposes.scoring]
title = "Influence score"
version = 1
text = "We compute a score from your public posts."

[purposes.research]
title = "Aggregate research"
version = 1
text = "Your public activity counts in aggregate statistics."
"""

PURPOSES_V2 = PURPOSES_V1.replace(
    'version = 1\ntext = "We compute a score from your public posts."',
    'version = 2\ntext = "We compute a score from your public posts and your followers."\n'
    'changes = "The score now also counts your followers."',
)
assert PURPOSES_V2 != PURPOSES_V1
