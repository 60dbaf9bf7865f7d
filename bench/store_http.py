"""The http store kind's figures, against Demo Billing on loopback: one person's purge as the service grows,
and Ownstory's memory while a service exports and deletes a person with 100,000 items.

Demo Billing keeps its invoices in SQLite, indexed by identity, so its purge of 100 invoices should cost
about the same in a table of 1,000,000 as in one of 10,000; what Ownstory adds (a signed call, a JSON
answer) does not grow with either. The service runs in a process of its own, so the memory figure is
Ownstory's side alone.
"""
from __future__ import annotations

import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, jsonify
from joserfc.jwk import OKPKey
from werkzeug.serving import WSGIRequestHandler, make_server

from erasure.stores.http_kind import HttpStore
from erasure.stores.http_signing import RequestSigner

ITEMS_EACH = 100  # invoices per person
SAMPLES = 15  # people purged per table size; the median counts
SERVE = """
import sys
from werkzeug.serving import WSGIRequestHandler, make_server
from demo.billing import create_billing_app
class Quiet(WSGIRequestHandler):
    def log_request(self, *args): pass
app = create_billing_app({"BILLING_DATABASE": sys.argv[1], "OWNSTORY_JWKS_URL": sys.argv[2]})
server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"""


def purge_time(folder: Path, items: int) -> float:
    """Median seconds for an http store to have one person's 100 invoices deleted from `items` invoices."""
    with _keys() as (signer, jwks_url), _service(folder / f"billing-{items}.db", items, jwks_url) as url:
        store = _store(url, signer)
        entry = store.entries[0]
        people = items // ITEMS_EACH
        picks = [f"email:p{i}@bench.example" for i in range(0, people, max(1, people // (SAMPLES + 1)))][:SAMPLES + 1]
        store.purge(entry, [picks.pop()])  # warm-up: the connection and the service's first query
        times = []
        for person in picks:
            start = time.perf_counter()
            purged = store.purge(entry, [person])
            times.append(time.perf_counter() - start)
            if purged != ITEMS_EACH:
                raise RuntimeError(f"the service deleted {purged} invoices, not {ITEMS_EACH}")
        store.dispose()
        return statistics.median(times)


def peak_memory(folder: Path, items: int) -> int:
    """Peak bytes Ownstory allocates to count, export (page by page) and purge one person with `items` invoices."""
    with _keys() as (signer, jwks_url), _service(folder / "billing-one.db", items, jwks_url, each=items) as url:
        store = _store(url, signer)
        entry, person = store.entries[0], ["email:p0@bench.example"]
        tracemalloc.start()
        try:
            exported = sum(len(page) for page in store.export(entry, person))
            purged = store.purge(entry, person)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            store.dispose()
        if exported != items or purged != items:
            raise RuntimeError(f"exported {exported} and purged {purged} invoices, not {items}")
        return peak


class _keys:
    """A signing key, and its JWKS on loopback: what Ownstory publishes at /.well-known/jwks.json."""

    def __enter__(self) -> tuple[RequestSigner, str]:
        key = Ed25519PrivateKey.generate()
        kid = OKPKey.import_key(key).thumbprint()
        app = Flask("bench_jwks")
        app.add_url_rule("/jwks.json", "jwks", lambda: jsonify(
            keys=[{**OKPKey.import_key(key).as_dict(private=False), "kid": kid}]))
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return RequestSigner(lambda: (kid, key)), f"http://127.0.0.1:{self.server.server_port}/jwks.json"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _service:
    """Demo Billing in a process of its own, over a SQLite file of `items` invoices, `each` per person."""

    def __init__(self, database: Path, items: int, jwks_url: str, each: int = ITEMS_EACH) -> None:
        self.database, self.items, self.jwks_url, self.each = database, items, jwks_url, each

    def __enter__(self) -> str:
        self.process = subprocess.Popen([sys.executable, "-c", SERVE, str(self.database), self.jwks_url],  # noqa: S603
                                        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip().decode()
        if not port.isdigit():
            self.process.kill()
            raise RuntimeError("Demo Billing did not start")
        with sqlite3.connect(self.database) as conn:  # after the service made its tables
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                "INSERT INTO invoices (customer, number, amount_cents, issued_on) "
                "SELECT 'email:p' || (i / ?) || '@bench.example', 'INV-' || i, 1900, '2026-01-15' FROM n",
                (self.items - 1, self.each))
            conn.execute("ANALYZE invoices")
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.database.unlink(missing_ok=True)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _store(url: str, signer: RequestSigner) -> HttpStore:
    raw = {"name": "billing", "kind": "http", "endpoint_env": "BENCH_BILLING_URL", "categories": ["invoices"],
           "identities": ["email"]}
    store = HttpStore.load("bench", "stores.billing", raw, None, {"BENCH_BILLING_URL": url})
    store.use_signer(signer)
    return store
