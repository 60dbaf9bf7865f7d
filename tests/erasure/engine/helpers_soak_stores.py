"""The soak's stores beyond SQL: a Redis cache, S3 object storage (SeaweedFS) and Demo Billing, the reference
service of the http kind, each holding data about every person, and each failing in its own way while the
soak runs: Redis restarts (killed, it comes back from its append-only file), the S3 server is down for a few
seconds, and Demo Billing answers 500 to its first erasures, then runs erasures as 202 jobs for a while.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import cast

from sqlalchemy import func, select

from bench.optouts import Person
from erasure.models import ErasureStep
from tests.erasure.stores.helpers_billing import billing_app
from tests.erasure.stores.helpers_redis import RedisServer, require_redis_server
from tests.erasure.stores.helpers_seaweedfs import SeaweedFS, require_weed
from tests.helpers_servers import serve

FEED_KEYS = 5  # feed:<account>:<n>, listed in idx:feed:<account>
PICTURES = 2  # avatars/<account>/<n>.jpg
INVOICES = 2  # at Demo Billing, under email:<email>
# What each person holds, by category, as the receipt must count it: every follower list of the stayers
# holds every person, so each person is a member of two.
EXPECTED_ROWS = {"cached profile": 1, "feeds": FEED_KEYS, "follow lists": 2, "pictures": PICTURES,
                 "invoices": INVOICES}
BUCKET = "media"
BILLING_500S = 20  # the first erasures Demo Billing answers with a 500
JOBS_FOR = 8.0  # seconds, from the first purge, during which Demo Billing answers erasures with 202 jobs
S3_DOWN = 3.0  # seconds the S3 server stays down

DATAMAP = f"""
[[stores]]
name = "cache"
kind = "redis"
url_env = "SOAK_REDIS_URL"

[[stores.keys]]
pattern = "profile:{{identity}}"
category = "cached profile"
identity = "account"
network = "demo"

[[stores.keys]]
pattern = "feed:{{identity}}:*"
index = "idx:feed:{{identity}}"
category = "feeds"
identity = "account"
network = "demo"

[[stores.members]]
key_pattern = "followers:*"
category = "follow lists"
identity = "account"
network = "demo"

[[stores]]
name = "media"
kind = "s3"
endpoint_url_env = "SOAK_S3_ENDPOINT"
bucket = "{BUCKET}"
access_key_env = "SOAK_S3_KEY"
secret_key_env = "SOAK_S3_SECRET"

[[stores.objects]]
prefix = "avatars/{{identity}}/"
category = "pictures"
identity = "account"
network = "demo"

[[stores]]
name = "billing"
kind = "http"
endpoint_env = "SOAK_BILLING_URL"
categories = ["invoices"]
identities = ["email"]
"""


def require_servers() -> None:
    """Skips the soak, with the reason, where a server binary is missing; in CI, fails it instead."""
    require_redis_server()
    require_weed()


class SoakStores:
    """The three servers, started in `folder` and stopped with `stack`."""

    def __init__(self, folder: Path, stack: ExitStack, stayers: tuple[str, ...]) -> None:
        self.stayers = stayers
        (folder / "redis").mkdir()
        (folder / "s3").mkdir()
        self.redis = RedisServer(folder / "redis", persistent=True).start()
        stack.callback(self.redis.stop)
        self.s3 = SeaweedFS(require_weed(), folder / "s3").start()
        stack.callback(self.s3.stop)
        self.s3.bucket(BUCKET)
        app = billing_app(str(folder / "billing.db"), "http://127.0.0.1:9/not-yet")
        self.billing = app.extensions["billing"]
        self.billing_server = serve(app)
        stack.callback(self.billing_server.stop)
        self.redis_restarts = self.s3_outages = 0

    @property
    def environ(self) -> dict[str, str]:
        return {"SOAK_REDIS_URL": self.redis.url, **self.s3.environ(prefix="SOAK_S3"),
                "SOAK_BILLING_URL": self.billing_server.url}

    def trust(self, ownstory: str) -> None:
        """Demo Billing checks each call's signature against the keys Ownstory serves."""
        self.billing.keys.jwks_url = f"{ownstory}/.well-known/jwks.json"

    # --- what each person holds, and the stayers ----------------------------------------------------------

    def seed(self, people: list[Person]) -> None:
        accounts = [p.account for p in people] + list(self.stayers)
        client = self.redis.client()
        try:
            for start in range(0, len(accounts), 200):
                with client.pipeline(transaction=True) as pipe:
                    for account in accounts[start:start + 200]:
                        pipe.hset(f"profile:{account}", mapping={"name": f"h{account}", "score": "50"})
                        feed = [f"feed:{account}:{n}" for n in range(FEED_KEYS)]
                        pipe.mset(dict.fromkeys(feed, "a post"))  # each key and its name, together
                        pipe.sadd(f"idx:feed:{account}", *feed)
                    pipe.execute()
            for stayer in self.stayers:
                others = [a for a in accounts if a != stayer]
                for start in range(0, len(others), 1000):
                    client.sadd(f"followers:{stayer}", *others[start:start + 1000])
        finally:
            client.close()
        s3 = self.s3.client()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=b"\xff\xd8 a picture"),
                          [f"avatars/{a}/{n}.jpg" for a in accounts for n in range(PICTURES)]))
        with self.billing.lock, self.billing.db() as conn:
            conn.executemany("INSERT INTO invoices (customer, number, amount_cents, issued_on) VALUES (?, ?, ?, ?)",
                             [(f"email:{email}", f"INV-{i}-{n}", 1900, "2026-01-15")
                              for i, email in enumerate([p.email for p in people] + self._stayer_emails)
                              for n in range(INVOICES)])
        self.billing.faults.set("erase", status=500, times=BILLING_500S)

    @property
    def _stayer_emails(self) -> list[str]:
        return [f"{stayer}@stays.example" for stayer in self.stayers]

    # --- the faults ---------------------------------------------------------------------------------------

    def faults(self, sessions, stop: threading.Event) -> threading.Thread:
        """Once purges run: Demo Billing's 202 jobs for a while, Redis restarted, S3 down for a few seconds."""
        def purging() -> bool:
            with sessions() as db:
                return bool(db.scalar(select(func.count()).select_from(ErasureStep).where(
                    ErasureStep.kind == "purge", ErasureStep.status == "running")))

        def run() -> None:
            while not stop.is_set() and not purging():
                stop.wait(0.2)
            if stop.is_set():
                return
            begun = time.monotonic()
            self.billing.polls_before_done = 2
            _at(stop, begun + 1.0, self._restart_redis)
            _at(stop, begun + 3.0, self._s3_outage)
            _at(stop, begun + JOBS_FOR, lambda: setattr(self.billing, "polls_before_done", 0))
            self.billing.polls_before_done = 0

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def _restart_redis(self) -> None:
        self.redis.restart()  # killed as in a crash: it comes back from its append-only file
        self.redis_restarts += 1

    def _s3_outage(self) -> None:
        self.s3.stop()
        time.sleep(S3_DOWN)
        self.s3.start()
        self.s3_outages += 1

    # --- what is left -------------------------------------------------------------------------------------

    def left(self) -> dict[str, object]:
        """What each store still holds, for the soak to compare with what the stayers hold."""
        client = self.redis.client()
        try:
            keys = sorted(k.decode() for k in client.scan_iter(count=1000))
            followers = {f"followers:{s}": sorted(m.decode() for m in cast(set, client.smembers(f"followers:{s}")))
                         for s in self.stayers}
        finally:
            client.close()
        pictures = sum(page.get("KeyCount", 0) for page in self.s3.client().get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="avatars/"))
        with self.billing.db() as conn:
            invoices = conn.execute("SELECT count(*) FROM invoices").fetchone()[0]
            jobs = conn.execute("SELECT count(*), sum(deleted), count(*) - count(deleted) FROM erasures").fetchone()
        return {"redis keys": keys, "followers": followers, "pictures": pictures, "invoices": invoices,
                "erasure jobs": jobs[0], "invoices the jobs deleted": jobs[1], "jobs unfinished": jobs[2]}

    def stayers_hold(self, people: int) -> dict[str, object]:
        """What `left()` must find once every person has gone: the stayers' own data, and the jobs."""
        keys = sorted([f"profile:{s}" for s in self.stayers] + [f"idx:feed:{s}" for s in self.stayers]
                      + [f"feed:{s}:{n}" for s in self.stayers for n in range(FEED_KEYS)]
                      + [f"followers:{s}" for s in self.stayers])
        followers = {f"followers:{s}": sorted(o for o in self.stayers if o != s) for s in self.stayers}
        return {"redis keys": keys, "followers": followers, "pictures": PICTURES * len(self.stayers),
                "invoices": INVOICES * len(self.stayers), "erasure jobs": people,
                "invoices the jobs deleted": INVOICES * people, "jobs unfinished": 0}


def _at(stop: threading.Event, when: float, action: Callable[[], None]) -> None:
    if not stop.wait(max(0.0, when - time.monotonic())):
        action()
