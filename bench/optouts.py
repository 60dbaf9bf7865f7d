"""Opt-outs per second, from submission to done, against the floor: the same revocations and DELETEs, issued directly.

Every phase gets a cohort of its own, seeded the same way: N people, each with a grant at both Demo
Social networks and 100 rows in the platform store. The floor revokes and deletes for its cohort with
the concurrency the workers have (processes × threads), and nothing else: no queue, no leases, no
consent ledger, no counting, no verify, no mail.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from flask import Flask
from sqlalchemy import create_engine, delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, utcnow, write_lock
from app.models import User
from app.settings import ROOT
from bench.world import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, NETWORKS, World, stop
from consent.models import Grant
from consent.service import grants_of, set_consents
from demo import platform
from demo.models import Token
from erasure.context import context_from_app
from erasure.models import ErasureStep, OptOutRequest, RequestStatus, StepStatus
from erasure.optout import service
from erasure.stores.datamap import Identities, load_datamap
from erasure.stores.purge import entry_table
from erasure.stores.sql import TableEntry

# Steps at once per worker process in the rows that compare one worker with three: 4, so that three workers'
# work fits the machine's 2 CPUs. `flask worker` runs 16 (erasure.engine.worker.THREADS); a row of its own
# measures one worker with those.
THREADS = 4
TICK = 0.1  # seconds between a worker's looks for due work (`flask worker --tick`; 1 by default)
POSTS = 95  # with a profile, 2 endorsements given, a score and a mailing-list entry: 100 platform rows each


@dataclass(frozen=True)
class Person:
    account: str  # the same account id at both networks; the platform keys its rows on Demo Social's
    email: str
    tokens: dict[str, tuple[str, str]]  # network key: (access token, refresh token)

    @property
    def handle(self) -> str:
        return f"h{self.account}"

    @property
    def identities(self) -> Identities:
        return Identities(email=self.email, accounts=tuple((k, self.account) for k in NETWORKS),
                          handles=tuple((k, self.handle) for k in NETWORKS))


def cohort(number: int, n: int) -> list[Person]:
    return [Person(f"{number}{i:07d}", f"p{number}-{i}@bench.example",
                   {key: (secrets.token_urlsafe(24), secrets.token_urlsafe(24)) for key in NETWORKS})
            for i in range(n)]


def seed(world: World, people: list[Person], posts: int = POSTS, stayers: tuple[str, str] | None = None) -> None:
    """The networks' tokens and the platform's rows about these people.

    Endorsements go round the cohort; with `stayers` (two accounts that do not leave), each person
    gives both of them one and gets one from each instead, so every person's row counts are fixed
    whatever order the purges run in.
    """
    seed_tokens(world, people)
    seed_platform(world.platform_url, people, posts, stayers)


def seed_tokens(world: World, people: list[Person]) -> None:
    """What Demo Social's token endpoint writes for each grant, without the OAuth dance."""
    now = int(time.time())
    for key, url in world.network_stores.items():
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(insert(Token), [
                {"client_id": DEMO_CLIENT_ID, "account_id": p.account, "access_token": p.tokens[key][0],
                 "refresh_token": p.tokens[key][1], "scope": "profile posts", "issued_at": now, "expires_in": 86400}
                for p in people])
        engine.dispose()


def seed_platform(platform_url: str, people: list[Person], posts: int = POSTS,
                  stayers: tuple[str, str] | None = None) -> None:
    engine, at, n = make_engine(platform_url), utcnow(), len(people)
    platform.metadata.create_all(engine)
    if stayers:
        endorsements = [{"giver_id": g, "receiver_id": r, "topic": "bench"}
                        for p in people for g, r in ((p.account, stayers[0]), (p.account, stayers[1]),
                                                     (stayers[0], p.account), (stayers[1], p.account))]
    else:
        endorsements = [{"giver_id": p.account, "receiver_id": people[(i + d) % n].account, "topic": "bench"}
                        for i, p in enumerate(people) for d in (1, 2)]
    rows = {
        platform.profiles: [{"account_id": p.account, "handle": p.handle, "display_name": p.handle, "bio": ""}
                            for p in people],
        platform.posts: [{"author_id": p.account, "body": f"post {j}", "created_at": at}
                         for p in people for j in range(posts)],
        platform.endorsements: endorsements,
        platform.scores: [{"handle": p.handle, "score": 50.0, "computed_at": at} for p in people],
        platform.mailing_list: [{"email": p.email, "subscribed_at": at} for p in people],
    }
    with engine.begin() as conn:
        for table, values in rows.items():
            if values:  # an empty list would insert one row of defaults
                conn.execute(table.insert(), values)
    engine.dispose()


def sign_up(app: Flask, people: list[Person]) -> list[str]:
    """Ownstory's side: an account per person, both grants, and a consent to scoring. Returns the user ids."""
    vault, purposes = app.extensions["ownstory_vault"], app.extensions["purposes"]
    with _sessions(app)() as session:
        write_lock(session)
        ids = []
        for p in people:
            user = User(email=p.email, password_hash="!", role="person")  # noqa: S106 (a hash that matches none)
            session.add(user)
            session.flush()
            for key, (access, refresh) in p.tokens.items():
                session.add(Grant(user_id=user.id, network=key, account_id=p.account, handle=p.handle,
                                  scopes="profile posts", access_token=vault.seal(access),
                                  refresh_token=vault.seal(refresh)))
            set_consents(session, user.id, {("demo", "scoring")}, purposes, NETWORKS, utcnow())
            ids.append(user.id)
        session.commit()
    return ids


def floor(world: World, people: list[Person], concurrency: int) -> float:
    """People per second when only the essential calls are made, `concurrency` people at a time."""
    entries = [e for e in load_datamap(world.folder / "datamap.toml").entries if isinstance(e, TableEntry)]
    engine = make_engine(world.platform_url)
    local = threading.local()

    def leave(p: Person) -> None:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        for key, url in world.networks.items():
            access, refresh = p.tokens[key]
            for token, hint in ((refresh, "refresh_token"), (access, "access_token")):  # as the worker revokes
                answer = local.http.post(f"{url}/oauth/revoke", data={"token": token, "token_type_hint": hint},
                                         auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), timeout=10)
                answer.raise_for_status()
        for entry in entries:
            with engine.begin() as conn:
                erase_entry(conn, entry, p)

    try:
        return people_per_second(leave, people, concurrency)
    finally:
        engine.dispose()


def erase_entry(conn, entry: TableEntry, p: Person) -> None:
    """What the data map's entry says to do with a person's rows, issued directly: DELETE them, or NULL its columns."""
    t = entry_table(entry)
    match = t.c[entry.column].in_(p.identities.values_for(entry))
    if entry.action == "delete":
        conn.execute(delete(t).where(match))
    else:
        conn.execute(update(t).where(match).values(dict.fromkeys(entry.columns, None)))


def people_per_second(leave, people: list[Person], concurrency: int) -> float:
    """How many people a second `leave` handles, `concurrency` of them at a time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(leave, people))
    return len(people) / (time.perf_counter() - start)


def with_workers(app: Flask, world: World, user_ids: list[str], processes: int, threads: int = THREADS) -> float:
    """Opt-outs per second from the first submission to the last request completed, with worker processes."""
    workers = [_start_worker(world, threads) for _ in range(processes)]
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"a worker did not start; see {world.folder}/worker.log")
        sessions, ctx = _sessions(app), context_from_app(app)
        start = utcnow()
        request_ids = [_submit(sessions, ctx, user_id) for user_id in user_ids]
        end = _wait_until_done(sessions, request_ids, timeout=max(120.0, 2.0 * len(request_ids)))
    finally:
        for worker in workers:
            stop(worker)
    return len(request_ids) / (end - start).total_seconds()


def _start_worker(world: World, threads: int = THREADS) -> subprocess.Popen:
    with open(world.folder / "worker.log", "ab") as log:
        return subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
            [sys.executable, "-m", "bench.worker", "--outbox", str(world.outbox), "--threads", str(threads),
             "--tick", str(TICK)],
            cwd=ROOT, env={**os.environ, **world.environ}, stdout=subprocess.PIPE, stderr=log)


def _submit(sessions: sessionmaker[Session], ctx, user_id: str) -> str:
    """What the form's POST does, without the HTTP around it."""
    with sessions() as session:
        write_lock(session)  # before the first read, so that SQLite never has to upgrade a read to a write
        user = session.get(User, user_id)
        submitted = service.submit(session, ctx, user=user, grants=grants_of(session, user_id), scope="all",
                                   now=utcnow())
        session.commit()
        return submitted.request.id


def _wait_until_done(sessions: sessionmaker[Session], ids: list[str], timeout: float) -> dt.datetime:
    """When the last request completed, by the workers' clocks (the same machine's)."""
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as session:
            done, last = session.execute(
                select(func.count(), func.max(OptOutRequest.completed_at))
                .where(OptOutRequest.id.in_(ids), OptOutRequest.status == RequestStatus.COMPLETED)).one()
            if done == len(ids):
                return last
            stuck = session.scalar(select(ErasureStep.last_error).where(
                ErasureStep.request_id.in_(ids), ErasureStep.status == StepStatus.NEEDS_ATTENTION).limit(1))
        if stuck or time.monotonic() > deadline:
            raise RuntimeError(f"{done} of {len(ids)} opt-outs completed; " + (stuck or "timed out"))
        time.sleep(0.1)


def _sessions(app: Flask) -> sessionmaker[Session]:
    return app.extensions["ownstory_db"]["sessionmaker"]
