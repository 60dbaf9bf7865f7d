"""Ownstory's calls to a service are signed with its current receipt key, checked against its own JWKS."""
from __future__ import annotations

import datetime as dt

import pytest
import requests
from sqlalchemy import select

from app.db import utcnow, writing
from erasure.models import SigningKey
from erasure.receipts import keys
from erasure.stores.datamap import Identities
from erasure.stores.http_signing import RequestSigner
from erasure.stores.kinds import StoreMisconfigured
from erasure.wiring import sign_service_calls
from tests.erasure.stores.helpers_billing import billing_app, billing_store
from tests.helpers_servers import serve

LIZ = "email:liz@example.org"


@pytest.fixture
def ownstory(app):
    """The Ownstory app on a loopback port: its /.well-known/jwks.json is what the service reads."""
    with serve(app) as server:
        yield server


@pytest.fixture
def service(tmp_path, ownstory):
    with serve(billing_app(str(tmp_path / "billing.db"), f"{ownstory.url}/.well-known/jwks.json")) as server:
        yield server


def test_calls_are_signed_with_the_receipt_key_and_a_rotation_takes_at_once(app, sessions, vault, service,
                                                                           published_keys):
    store = billing_store(service.url, published_keys)
    store.use_signer(RequestSigner(lambda: keys.for_service_calls(sessions, vault)))
    state = service.app.extensions["billing"]
    state.add_invoices(LIZ, 2)
    (entry,) = store.entries
    assert store.count(entry, [LIZ]) == 2  # the key is made on first need, and published

    with sessions() as session, writing(session):
        old = keys.current(session, vault, "receipt", utcnow())[0].kid
        new = keys.rotate(session, vault, utcnow()).kid
    assert store.purge(entry, [LIZ]) == 2  # signed with the new key, which the service fetched to check it
    assert set(state.keys.keys) == {old, new}

    with sessions() as session:
        old_key = keys.private_key(vault, session.scalars(select(SigningKey).where(SigningKey.kid == old)).one())
    stale = billing_store(service.url, published_keys)
    stale.use_signer(RequestSigner(lambda: (old, old_key)))
    with pytest.raises(StoreMisconfigured, match="refused Ownstory's signature"):
        stale.count(entry, [LIZ])  # a retired key signs nothing new


def test_the_app_gives_its_http_stores_the_signer(app, sessions, vault, service, published_keys):
    store = billing_store(service.url, published_keys)
    store.service.signer = None
    app.extensions["datamap"].stores = (*app.extensions["datamap"].stores, store)
    sign_service_calls(app)
    assert store.count(store.entries[0], store.entries[0].values_in(Identities(email="Liz@example.org"))) == 0


def test_a_signature_lives_five_minutes(published_keys):
    now = dt.datetime(2026, 11, 25, 19, 0, tzinfo=dt.UTC)
    request = requests.Request("POST", "https://billing.internal/erase", json={"a": 1}).prepare()
    RequestSigner(published_keys.current, clock=lambda: now).sign(request)
    params = request.headers["Signature-Input"]
    assert params.startswith('ownstory=("@method" "@target-uri" "content-type" "content-digest")')
    created = int(now.timestamp())
    assert f"created={created}" in params and f"expires={created + 300}" in params
    assert f'keyid="{published_keys.current()[0]}"' in params and 'tag="ownstory-erasure"' in params
    assert request.headers["Content-Digest"].startswith("sha-256=:")
