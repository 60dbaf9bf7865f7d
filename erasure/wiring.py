"""What erasure adds to the base and to consent: its /metrics figures, its /readyz check and /me's data held."""
from __future__ import annotations

from collections.abc import Sequence

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import health, metrics
from app.models import User
from app.security import Vault, VaultError
from consent import views as consent_views
from consent.models import Grant
from erasure.models import SigningKey
from erasure.oversight import metrics as erasure_metrics
from erasure.receipts import keys
from erasure.stores.datamap import DataMap, HeldCount, count_held, identities_of
from erasure.stores.http_kind import HttpStore
from erasure.stores.http_signing import RequestSigner


def init_app(app: Flask) -> None:
    """Called by the factory once the extensions are bound."""
    metrics.register_collector(app, erasure_metrics.collect)
    health.register_check(app, "keys", lambda session: signing_keys_open(session, app.extensions["ownstory_vault"]))
    consent_views.register_held_counter(app, lambda user, grants: held_about(app.extensions["datamap"], user, grants))
    sign_service_calls(app)


def sign_service_calls(app: Flask) -> None:
    """The platform's own services (http stores) get Ownstory's signer: the receipt key, read at each call."""
    sessions, vault = app.extensions["ownstory_db"]["sessionmaker"], app.extensions["ownstory_vault"]
    signer = RequestSigner(lambda: keys.for_service_calls(sessions, vault))
    for store in app.extensions["datamap"].stores:
        if isinstance(store, HttpStore):
            store.use_signer(signer)


def signing_keys_open(session: Session, vault: Vault) -> bool:
    """The signing keys in use open with the configured OWNSTORY_TOKEN_KEYS (none yet is fine: made on need)."""
    try:
        for row in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
            keys.private_key(vault, row)
    except (VaultError, SQLAlchemyError, ValueError):
        return False
    return True


def held_about(datamap: DataMap, user: User, grants: Sequence[Grant]) -> list[HeldCount]:
    """Rows held about a signed-up person, per store and category, found through the data map."""
    return count_held(datamap, identities_of(user, grants))
