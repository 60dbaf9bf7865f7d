"""What erasure adds to the base and to consent: its /metrics figures, its /readyz check, /me's data held, and
the revocation of a token a refused connect was given."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import health, metrics
from app.db import Base
from app.limits import REDIS_KEYS as LIMITS_KEYS
from app.models import User
from app.security import Vault, VaultError
from consent import connect as consent_connect
from consent import views as consent_views
from consent.models import Grant
from consent.networks import Network
from erasure.engine import slots as shared_slots
from erasure.engine.revocation import GrantTokens, revoke
from erasure.models import SigningKey
from erasure.oversight import metrics as erasure_metrics
from erasure.receipts import keys
from erasure.stores import coverage
from erasure.stores.datamap import DataMap, HeldCount, count_held, identities_of
from erasure.stores.http_kind import HttpStore
from erasure.stores.http_signing import RequestSigner
from erasure.stores.redis_kind import RedisStore
from erasure.stores.sql import SqlStore

log = logging.getLogger(__name__)
DISCARD_TIMEOUT = (3, 5)  # the person is waiting on this page


def init_app(app: Flask) -> None:
    """Called by the factory once the extensions are bound."""
    metrics.register_collector(app, erasure_metrics.collect)
    slots = shared_slots.for_engine(app.extensions["ownstory_db"]["engine"])
    metrics.register_collector(app, lambda session: erasure_metrics.collect_calls(
        session, app.extensions["networks"], app.extensions["datamap"], slots))
    health.register_check(app, "keys", lambda session: signing_keys_open(session, app.extensions["ownstory_vault"]))
    consent_views.register_held_counter(app, lambda user, grants: held_about(app.extensions["datamap"], user, grants))
    consent_connect.register_token_discarder(app, discard_token)
    sign_service_calls(app)
    tell_stores_what_is_ownstorys(app)
    app.extensions["datamap_coverage"] = coverage.Watch(app.extensions["datamap"])  # the health page's, and:
    metrics.register_collector(app, lambda _: erasure_metrics.collect_datamap(app.extensions["datamap_coverage"]))


def sign_service_calls(app: Flask) -> None:
    """The platform's own services (http stores) get Ownstory's signer: the receipt key, read at each call."""
    sessions, vault = app.extensions["ownstory_db"]["sessionmaker"], app.extensions["ownstory_vault"]
    signer = RequestSigner(lambda: keys.for_service_calls(sessions, vault))
    for store in app.extensions["datamap"].stores:
        if isinstance(store, HttpStore):
            store.use_signer(signer)


def tell_stores_what_is_ownstorys(app: Flask) -> None:
    """A SQL store in Ownstory's own database is told Ownstory's tables, and a Redis store on the server and database
    where Ownstory counts its rate limits is told their keys: `flask datamap check` leaves both out."""
    tables = frozenset([*Base.metadata.tables, "alembic_version"])
    limits = app.config["RATELIMIT_STORAGE_URL"]
    for store in app.extensions["datamap"].stores:
        if isinstance(store, SqlStore):
            store.shares_database_with(app.config["DATABASE_URL"], tables)
        elif isinstance(store, RedisStore) and limits.startswith("redis"):  # rediss, redis+unix too
            store.shares_database_with(limits, (LIMITS_KEYS,))


def discard_token(network: Network, token: dict, account_id: str) -> None:
    """Revoke at once a token that must not be kept (a connect refused after the network gave it)."""
    tokens = GrantTokens(token.get("access_token"), token.get("refresh_token"), account_id)
    with requests.Session() as http:
        outcome = revoke(network, tokens, http, DISCARD_TIMEOUT)
    if not outcome.done:
        log.warning("a refused connect's token at %s was not revoked (%s); it is not kept", network.key, outcome.kind)


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
