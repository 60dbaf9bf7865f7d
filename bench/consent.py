"""Consent checks per second through POST /api/v1/consent/check (gunicorn, 2 web processes, batches of
1,000) against the same lookups made directly with SQLAlchemy Core on the same database: grants by
(network, account) through uq_grants_network_account, then consent_state by its primary key, each
batch's list sent as one parameter.

Both sides ask for the same batches, with as many at once (CLIENTS). The API does more than the two
SELECTs: it authenticates the caller, validates the body, checks the opt-out list (an HMAC per
identity, one more query), and writes and reads JSON. That is what the ratio prices. Each side runs
every batch ROUNDS times, the two taking turns, and its best run is its figure (compare).

The bench is its own load generator, on the same two CPUs as the service: each side's requests are made
before the clock starts (the API's bodies, the raw side's lists of accounts), and an answer is checked against the
bytes expected before any JSON is read, so that the load generator's own JSON work takes as little of
those CPUs as it can (encoding the API's bodies was a fifth of its CPU, and requests looked for a netrc
file at every call).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import requests
from flask import Flask
from sqlalchemy import String, bindparam, cast, func, insert, literal_column, select
from sqlalchemy.dialects.postgresql import JSON

from app.db import make_engine
from app.models import User
from bench.world import World, gunicorn
from consent.models import ConsentEvent, ConsentState, Grant

NETWORK = "demo"
PURPOSE = "scoring"
BATCH = 1000  # checks per request: the API's limit
WEB_PROCESSES = 2
CLIENTS = 4  # batches in flight at once, on either side
ROUNDS = 3  # runs of each side, in turn; the best of each is its figure


class ApiFailed(RuntimeError):
    """The API answered an error: the figure cannot be measured until that is fixed."""


def seed(world: World, people: int) -> list[str]:
    """`people` people with a grant at NETWORK and consent to PURPOSE; returns their account ids.

    Written in bulk. Consent checks read consent_state only, so one ledger event stands behind every
    state here (the foreign key needs one); the ledger's chain is not what this measures.
    """
    engine = make_engine(world.database_url)
    now = dt.datetime.now(dt.UTC)
    accounts = [f"c{i:08d}" for i in range(people)]
    ids = [str(uuid.uuid4()) for _ in accounts]
    with engine.begin() as conn:
        event = conn.execute(insert(ConsentEvent).returning(ConsentEvent.id), [{
            "subject_id": "bench", "seq": 1, "network": NETWORK, "purpose": PURPOSE, "version": 1,
            "action": "grant", "method": "form", "at": now, "prev_hash": "0" * 64, "hash": "0" * 64}]).scalar_one()
        for start in range(0, people, 10_000):
            chunk = range(start, min(people, start + 10_000))
            conn.execute(insert(User), [{"id": ids[i], "email": f"{accounts[i]}@bench.example", "password_hash": "!",
                                         "role": "person"} for i in chunk])
            conn.execute(insert(Grant), [{"user_id": ids[i], "network": NETWORK, "account_id": accounts[i],
                                          "handle": f"h{accounts[i]}", "scopes": "profile posts"} for i in chunk])
            conn.execute(insert(ConsentState), [{"subject_id": ids[i], "network": NETWORK, "purpose": PURPOSE,
                                                 "version": 1, "status": "granted", "event_id": event,
                                                 "updated_at": now} for i in chunk])
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE grants")
            conn.exec_driver_sql("ANALYZE consent_state")
    engine.dispose()
    return accounts


def batches(accounts: list[str], count: int, seed_: int = 7) -> list[list[str]]:
    rng = random.Random(seed_)
    return [rng.sample(accounts, BATCH) for _ in range(count)]


def compare(app: Flask, world: World, asked: list[list[str]], rounds: int = ROUNDS) -> tuple[float, float]:
    """Checks per second (through the API, by the raw SELECTs), each the best of `rounds` runs of every batch
    in `asked`, the two sides taking turns: a busy moment of this shared machine then weighs on one run of
    each, not on a whole side. Each API run opens its connections afresh, so that how gunicorn's processes
    share them (a process can get three of the four) is drawn again each time."""
    api, raw = 0.0, 0.0
    with _raw_asker(world, asked) as ask_raw, _api_asker(app, world, asked) as ask_api:
        ask_raw(0)  # a first batch each: it fails here if either side cannot answer
        ask_api(0)
        for _ in range(rounds):
            raw = max(raw, _rate(ask_raw, len(asked)))
            api = max(api, _rate(ask_api, len(asked)))
    return api, raw


def _rate(ask: Callable[[int], None], batches_: int) -> float:
    """Checks per second asking every batch (by its place in the list) once."""
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:  # new threads: new connections where a thread keeps its own
        list(pool.map(ask, range(batches_)))
    return batches_ * BATCH / (time.perf_counter() - start)


@contextmanager
def _api_asker(app: Flask, world: World, asked: list[list[str]]) -> Iterator[Callable[[int], None]]:
    """POST /api/v1/consent/check on WEB_PROCESSES gunicorn processes, each thread on its own keep-alive connection."""
    token = _service_token(app)
    local = threading.local()
    opened: list[requests.Session] = []
    bodies = [json.dumps({"checks": [{"network": NETWORK, "account": a, "purpose": PURPOSE} for a in accounts]})
              .encode() for accounts in asked]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # What the API answers when all of a batch's people consented, byte for byte (consent/api.py writes it)
    granted = ('{"results":[' + ",".join(['{"allowed":true,"reason":"granted"}'] * BATCH) + "]}\n").encode()

    def ask(batch: int) -> None:
        if not hasattr(local, "http"):
            local.http = requests.Session()
            local.http.trust_env = False  # loopback: no proxy or netrc to look up at each call
            opened.append(local.http)
        answer = local.http.post(f"{base}/api/v1/consent/check", timeout=120, headers=headers, data=bodies[batch])
        if answer.status_code != 200:
            raise ApiFailed(f"HTTP {answer.status_code}: {_last_error(log_path)}")
        if answer.content == granted and len(asked[batch]) == BATCH:
            return  # every one of them granted, as seeded
        results = answer.json()["results"]
        if len(results) != len(asked[batch]) or not all(r["allowed"] for r in results):
            raise RuntimeError("the consent API answered something other than granted for a person who consented")

    env = {**_os_environ(), **world.environ}
    log_path = world.folder / "gunicorn.log"
    with gunicorn(env, log_path, WEB_PROCESSES) as (_master, base):
        try:
            yield ask
        finally:
            for session in opened:
                session.close()


@contextmanager
def _raw_asker(world: World, asked: list[list[str]]) -> Iterator[Callable[[int], None]]:
    """The same lookups made directly: two indexed SELECTs per batch, each list sent as one JSON array
    parameter, as fast as the database answers them. An IN list of a thousand (network, account) pairs,
    rendered anew for every batch, was slower than the API itself once the API stopped sending one; a
    PostgreSQL array parameter costs psycopg more CPU than the JSON text (it dumps each element in Python),
    so the limit sends JSON as the API does."""
    engine = make_engine(world.database_url, pool_size=CLIENTS)

    def listed(column, name: str):
        if engine.dialect.name == "postgresql":
            return column.in_(select(func.json_array_elements_text(cast(bindparam(name, type_=String), JSON))))
        return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=String))))

    owners_query = select(Grant.account_id, Grant.user_id).where(Grant.network == NETWORK,
                                                                 listed(Grant.account_id, "accounts"))
    states_query = select(ConsentState.subject_id, ConsentState.version, ConsentState.status).where(
        listed(ConsentState.subject_id, "subjects"), ConsentState.network == NETWORK, ConsentState.purpose == PURPOSE)

    listed_accounts = [json.dumps(accounts) for accounts in asked]

    def ask(batch: int) -> None:
        accounts = asked[batch]
        with engine.connect() as conn:
            owners = dict(conn.execute(owners_query, {"accounts": listed_accounts[batch]}).all())
            subjects = [owners[a] for a in accounts if a in owners]
            states = conn.execute(states_query, {"subjects": json.dumps(subjects)}).all()
        if len(states) != len(accounts):
            raise RuntimeError("a person's consent state is missing")

    try:
        yield ask
    finally:
        engine.dispose()


def _last_error(log_path) -> str:
    """The last exception a web process logged, in one line."""
    text = log_path.read_text(errors="replace").replace("\\n", "\n")  # JSON log lines escape their newlines
    found = re.findall(r"([A-Za-z_.]+(?:Error|Exception): [^\\\"\n]{0,160})", text)
    return found[-1].strip() if found else f"see {log_path}"


def _service_token(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["tokens", "create", "--role", "service", "--name", "bench"])
    if result.exit_code != 0:
        raise RuntimeError(result.output)
    return result.output.strip()


def _os_environ() -> dict[str, str]:
    """The bench's own environment without OWNSTORY_* settings: the world's settings are the only ones."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OWNSTORY_")}
