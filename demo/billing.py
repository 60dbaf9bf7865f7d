"""Demo Billing: the reference service of Ownstory's erasure protocol, over a SQLite table of invoices.

It implements the README's "Erasing in the platform's own services" as a platform's team would: every
call must be signed by a key Ownstory publishes (RFC 9421, Ed25519, fetched from its JWKS), an erasure
is idempotent by its request_id, and it may be answered at once (200) or later (202, then a status URL).
Invoices are held by identity string ("email:liz@example.org"). Under `make run` it is mounted at
/demo/billing and invents two invoices for each email address it is first asked about, so whoever signs
up has something to delete. Tests make it slow (`polls_before_done`), late to answer or broken (`faults`).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Blueprint, Flask, current_app, g, jsonify, request, url_for
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, InvalidSignature, algorithms

from .faults import CallCounter, Faults, UnderWay

TAG = "ownstory-erasure"
MAX_AGE = dt.timedelta(minutes=5)
CATEGORY = "invoices"
SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, number TEXT NOT NULL,
                                     amount_cents INTEGER NOT NULL, issued_on TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS invoices_customer ON invoices (customer);
CREATE TABLE IF NOT EXISTS seen (customer TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS erasures (request_id TEXT PRIMARY KEY, customers TEXT NOT NULL,
                                     deleted INTEGER, polls_left INTEGER);
"""


class KeysUnavailable(Exception):
    """Ownstory's JWKS could not be fetched: the caller should try again, not give up."""


class OwnstoryKeys(HTTPSignatureKeyResolver):
    """Ownstory's Ed25519 keys by kid, from its JWKS: kept for minutes (a rotation retires a key), and
    fetched again sooner, though at most every few seconds, for a kid not seen yet (a rotation's new key)."""

    def __init__(self, jwks_url: str, refetch_after: float = 5.0, cache_for: float = 300.0) -> None:
        self.jwks_url, self.refetch_after, self.cache_for = jwks_url, refetch_after, cache_for
        self.keys: dict[str, tuple[Ed25519PublicKey, dt.datetime | None]] = {}  # kid: (key, retired_at)
        self.fetched_at = float("-inf")
        self.lock = threading.Lock()

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        found = self.lookup(key_id)
        return found[0] if found else None

    def lookup(self, kid: str) -> tuple[Ed25519PublicKey, dt.datetime | None] | None:
        with self.lock:
            age = time.monotonic() - self.fetched_at
            if age > self.cache_for or (kid not in self.keys and age > self.refetch_after):
                self.fetched_at = time.monotonic()
                try:
                    jwks = requests.get(self.jwks_url, timeout=5).json()
                except (requests.RequestException, ValueError) as exc:
                    raise KeysUnavailable from exc
                self.keys = {k["kid"]: (Ed25519PublicKey.from_public_bytes(_unb64(k["x"])), _retired_at(k))
                             for k in jwks.get("keys", []) if k.get("kty") == "OKP" and k.get("crv") == "Ed25519"}
            return self.keys.get(kid)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _retired_at(jwk: dict) -> dt.datetime | None:
    if not jwk.get("retired"):
        return None
    if not jwk.get("retired_at"):
        return dt.datetime.min.replace(tzinfo=dt.UTC)  # retired, since no one knows when: trusted for nothing
    return dt.datetime.fromisoformat(jwk["retired_at"])


@dataclass
class BillingState:
    """What app.extensions["billing"] holds: the database, Ownstory's keys, and the tests' levers."""

    database: str
    keys: OwnstoryKeys
    seed_on_first_sight: bool = False
    polls_before_done: int | None = 0  # 0: erase at once (200); n: 202, done at the n-th poll; None: never done
    faults: Faults = field(default_factory=Faults)
    calls: CallCounter = field(default_factory=CallCounter)
    under_way: UnderWay = field(default_factory=UnderWay)  # the calls being answered, and the most at once
    lock: threading.Lock = field(default_factory=threading.Lock)  # one writer at a time, as SQLite wants

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.database)) as conn, conn:
            yield conn

    def add_invoices(self, customer: str, n: int) -> None:
        with self.lock, self.db() as conn:
            conn.execute("INSERT OR IGNORE INTO seen VALUES (?)", (customer,))
            start = conn.execute("SELECT count(*) FROM invoices").fetchone()[0]
            conn.executemany("INSERT INTO invoices (customer, number, amount_cents, issued_on) VALUES (?, ?, ?, ?)",
                             [(customer, f"INV-{start + i + 1:05d}", 1900 + 700 * i, f"2026-0{1 + i % 9}-15")
                              for i in range(n)])

    def held(self, customer: str) -> int:
        with self.db() as conn:
            return conn.execute("SELECT count(*) FROM invoices WHERE customer = ?", (customer,)).fetchone()[0]


def create_billing_app(config: dict) -> Flask:
    """config: BILLING_DATABASE (a SQLite file), OWNSTORY_JWKS_URL, and BILLING_SEED_ON_FIRST_SIGHT."""
    app = Flask(__name__)
    app.config.update(config)
    state = BillingState(app.config["BILLING_DATABASE"], OwnstoryKeys(app.config["OWNSTORY_JWKS_URL"]),
                         seed_on_first_sight=bool(app.config.get("BILLING_SEED_ON_FIRST_SIGHT")))
    with state.db() as conn:
        conn.executescript(SCHEMA)
    app.extensions["billing"] = state
    app.register_blueprint(bp)
    return app


bp = Blueprint("billing", __name__)


def _state() -> BillingState:
    return current_app.extensions["billing"]


def _refuse(status: int, error: str, retry_after: int | str | None = None):
    response = jsonify({"error": error})
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.before_request
def _signed_by_ownstory():
    """Every call must carry Ownstory's signature over its method, URL and body, made in the last minutes."""
    state = _state()
    env = request.environ
    # The target as the client sent it: behind a proxy, this service's public URL instead.
    target = env.get("RAW_URI") or env.get("REQUEST_URI") or (request.script_root + request.full_path.rstrip("?"))
    message = SimpleNamespace(method=request.method, url=f"{request.scheme}://{request.host}{target}",
                              headers=request.headers)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=state.keys)
    covered = ("@method", "@target-uri") + (("content-type", "content-digest") if request.method == "POST" else ())
    try:
        signed = verifier.verify(message, expect_tag=TAG, max_age=MAX_AGE, require_components=covered,
                                 body=request.get_data() if request.method == "POST" else None)[0]
    except InvalidSignature as exc:
        if isinstance(exc.__cause__, KeysUnavailable):
            return _refuse(503, "Ownstory's keys could not be fetched just now", retry_after=5)
        return _refuse(401, "the request is not signed by Ownstory")
    found = state.keys.lookup(signed.parameters["keyid"])
    retired_at = found[1] if found else None
    created = dt.datetime.fromtimestamp(signed.parameters["created"], dt.UTC)  # whole seconds, so: retired that second
    if "expires" not in signed.parameters or (retired_at is not None and created >= retired_at.replace(microsecond=0)):
        return _refuse(401, "the request is not signed by Ownstory")
    name = request.endpoint.rpartition(".")[2] if request.endpoint else ""
    state.calls.hit(name)
    state.under_way.enter(name)
    g.billing_call = name  # left when the answer is sent (_answered), a late one included
    fault = state.faults.take(name)
    if fault is not None and fault.status is not None:
        return _refuse(fault.status, "an injected fault", retry_after=fault.retry_after)
    if fault is not None and fault.delay:
        g.answer_late_by = fault.delay  # the work is done, its answer is late: what a lost answer looks like
    return None


@bp.after_request
def _late(response):
    time.sleep(g.pop("answer_late_by", 0.0))
    return response


@bp.teardown_request
def _answered(_error: BaseException | None) -> None:
    name = g.pop("billing_call", None)
    if name is not None:
        _state().under_way.leave(name)


def _asked() -> list[str] | None:
    """The customers a call is about, or None for a body that is not the protocol's."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("categories") != [CATEGORY]:
        return None
    identities = body.get("identities")
    if not isinstance(identities, list) or not all(isinstance(i, str) for i in identities):
        return None
    return identities


def _seen(conn: sqlite3.Connection, customers: list[str]) -> None:
    """Under `make run`: two invoices for each email address, the first time it is asked about."""
    if not _state().seed_on_first_sight:
        return
    for customer in customers:
        if customer.startswith("email:") and conn.execute("SELECT 1 FROM seen WHERE customer = ?",
                                                          (customer,)).fetchone() is None:
            conn.execute("INSERT INTO seen VALUES (?)", (customer,))
            conn.executemany("INSERT INTO invoices (customer, number, amount_cents, issued_on) VALUES (?, ?, ?, ?)",
                             [(customer, f"INV-{n}", cents, day) for n, cents, day
                              in ((1, 1900, "2026-01-15"), (2, 4500, "2026-02-15"))])


def _held(conn: sqlite3.Connection, customers: list[str]) -> int:
    marks = ", ".join("?" * len(customers))
    return conn.execute(f"SELECT count(*) FROM invoices WHERE customer IN ({marks})", customers).fetchone()[0]  # noqa: S608


@bp.post("/count")
def count():
    customers = _asked()
    if customers is None:
        return _refuse(400, f"expected {{'categories': ['{CATEGORY}'], 'identities': [...]}}")
    state = _state()
    with state.lock, state.db() as conn:
        _seen(conn, customers)
        return jsonify(counts={CATEGORY: _held(conn, customers) if customers else 0})


@bp.post("/export")
def export():
    customers, body = _asked(), request.get_json(silent=True) or {}
    cursor, limit = body.get("cursor") or "0", body.get("limit", 100)
    if customers is None or not str(cursor).isdigit() or not isinstance(limit, int) or not 1 <= limit <= 1000:
        return _refuse(400, "expected categories, identities, and a cursor and limit from the last answer")
    state = _state()
    with state.lock, state.db() as conn:
        _seen(conn, customers)
        marks = ", ".join("?" * len(customers)) or "NULL"
        rows = conn.execute(f"SELECT id, number, amount_cents, issued_on FROM invoices WHERE customer IN ({marks}) "  # noqa: S608
                            "AND id > ? ORDER BY id LIMIT ?", [*customers, int(cursor), limit + 1]).fetchall()
    items = [{"number": number, "amount_cents": cents, "issued_on": day} for _id, number, cents, day in rows[:limit]]
    return jsonify(items={CATEGORY: items}, next=str(rows[limit - 1][0]) if len(rows) > limit else None)


@bp.post("/", strict_slashes=False)  # mounted at /demo/billing, it is called there, not at .../billing/
def erase():
    customers, body = _asked(), request.get_json(silent=True) or {}
    request_id = body.get("request_id")
    if customers is None or not isinstance(request_id, str) or not 1 <= len(request_id) <= 200:
        return _refuse(400, "expected request_id, categories and identities")
    state = _state()
    with state.lock, state.db() as conn:
        # The same request_id twice deletes once and answers the same.
        if conn.execute("SELECT 1 FROM erasures WHERE request_id = ?", (request_id,)).fetchone() is None:
            polls = state.polls_before_done
            conn.execute("INSERT INTO erasures VALUES (?, ?, NULL, ?)", (request_id, json.dumps(customers), polls))
            if polls == 0:
                _finish(conn, request_id)
        return _answer(conn, request_id)


@bp.get("/erasures/<request_id>")
def status(request_id: str):
    state = _state()
    with state.lock, state.db() as conn:
        row = conn.execute("SELECT deleted, polls_left FROM erasures WHERE request_id = ?", (request_id,)).fetchone()
        if row is None:
            return _refuse(404, "no such erasure")
        deleted, polls_left = row
        if deleted is None and polls_left is not None:
            conn.execute("UPDATE erasures SET polls_left = ? WHERE request_id = ?", (polls_left - 1, request_id))
            if polls_left <= 1:
                _finish(conn, request_id)
        return _answer(conn, request_id)


def _finish(conn: sqlite3.Connection, request_id: str) -> None:
    customers = json.loads(conn.execute("SELECT customers FROM erasures WHERE request_id = ?",
                                        (request_id,)).fetchone()[0])
    marks = ", ".join("?" * len(customers)) or "NULL"
    deleted = conn.execute(f"DELETE FROM invoices WHERE customer IN ({marks})", customers).rowcount  # noqa: S608
    conn.execute("UPDATE erasures SET deleted = ? WHERE request_id = ?", (deleted, request_id))


def _answer(conn: sqlite3.Connection, request_id: str):
    deleted = conn.execute("SELECT deleted FROM erasures WHERE request_id = ?", (request_id,)).fetchone()[0]
    if deleted is None:
        return jsonify(status_url=url_for("billing.status", request_id=request_id)), 202
    return jsonify(deleted={CATEGORY: deleted})
