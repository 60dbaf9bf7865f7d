"""Demo Billing (the http store's reference service) on a loopback port, and Ownstory's published keys for it.

`PublishedKeys` serves a JWKS as Ownstory's /.well-known/jwks.json does (Ed25519 keys, kid = RFC 7638
thumbprint, `retired`/`retired_at` after a rotation), and signs with the current key: the kind's tests need
no Ownstory database. One test checks the real thing, Ownstory's own JWKS and receipt key.
"""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, jsonify
from joserfc.jwk import OKPKey

from demo.billing import BillingState, create_billing_app
from erasure.stores.http_kind import HttpStore
from erasure.stores.http_signing import RequestSigner
from tests.helpers_servers import LiveServer, serve

BILLING_VAR = "BILLING_ERASE_URL"


class PublishedKeys:
    """Signing keys and their JWKS on a live loopback server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: list[tuple[str, Ed25519PrivateKey, dt.datetime | None]] = []  # (kid, key, retired_at)
        self.rotate()
        app = Flask("published_keys")
        app.add_url_rule("/.well-known/jwks.json", "jwks", lambda: jsonify(self.jwks()))
        self.server: LiveServer = serve(app)

    @property
    def jwks_url(self) -> str:
        return f"{self.server.url}/.well-known/jwks.json"

    def rotate(self, now: dt.datetime | None = None) -> None:
        with self._lock:
            now = now or dt.datetime.now(dt.UTC)
            self.keys = [(kid, key, retired or now) for kid, key, retired in self.keys]
            key = Ed25519PrivateKey.generate()
            self.keys.append((OKPKey.import_key(key).thumbprint(), key, None))

    def current(self) -> tuple[str, Ed25519PrivateKey]:
        with self._lock:
            kid, key, _retired = self.keys[-1]
            return kid, key

    def jwks(self) -> dict:
        with self._lock:
            return {"keys": [{**OKPKey.import_key(key).as_dict(private=False), "kid": kid, "alg": "Ed25519",
                              "use": "sig", **({"retired": True, "retired_at": retired.isoformat()} if retired else {})}
                             for kid, key, retired in self.keys]}

    def signer(self, clock=None) -> RequestSigner:
        return RequestSigner(self.current, clock) if clock else RequestSigner(self.current)


def billing_app(database: str, jwks_url: str, seed: bool = False):
    app = create_billing_app({"BILLING_DATABASE": database, "OWNSTORY_JWKS_URL": jwks_url,
                              "BILLING_SEED_ON_FIRST_SIGHT": seed})
    keys = app.extensions["billing"].keys
    keys.refetch_after = keys.cache_for = 0.0  # tests rotate keys and expect it seen at once
    return app


def reset(state: BillingState) -> None:
    """Back to an empty, well-behaved service between tests."""
    state.faults.clear()
    state.calls.reset()
    state.polls_before_done = 0
    with state.lock, state.db() as conn:
        for table in ("invoices", "seen", "erasures"):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608


def billing_store(url: str, published: PublishedKeys, categories=("invoices",), identities=("email",),
                  poll_for: float = 2.0, timeout=(2, 2)) -> HttpStore:
    raw = {"name": "billing", "kind": "http", "endpoint_env": BILLING_VAR, "categories": list(categories),
           "identities": list(identities)}
    store = HttpStore.load("datamap.toml", "stores.billing", raw, None, {BILLING_VAR: url})
    store.service.timeout, store.service.poll_for = timeout, poll_for  # seconds, not the minutes of production
    store.use_signer(published.signer())
    return store


@pytest.fixture(scope="session")
def published_keys():
    keys = PublishedKeys()
    yield keys
    keys.server.stop()


@pytest.fixture(scope="session")
def billing_server(tmp_path_factory, published_keys):
    """Demo Billing for the whole run, checking signatures against `published_keys`."""
    server = serve(billing_app(str(tmp_path_factory.mktemp("billing") / "billing.db"), published_keys.jwks_url))
    yield server
    server.stop()


@pytest.fixture
def billing(billing_server) -> BillingState:
    """The service's state, emptied for the test: add invoices, set faults, slow it down."""
    state = billing_server.app.extensions["billing"]
    reset(state)
    yield state
    reset(state)
    if not billing_server.running:
        billing_server.start()
