"""The soak: 3 gunicorn and 3 `flask worker` processes on one database, 500 opt-outs, faults all the while.

Every person holds a grant at each of two Demo Social networks (real `python -m demo` processes), rows
in the platform store (SQL), keys and set memberships in Redis, objects in S3 (SeaweedFS) and invoices at
Demo Billing, the http kind's reference service (helpers_soak_stores.py). Their opt-outs come in through
the service API of the web processes. Meanwhile one network's revocation endpoint answers 503 with
Retry-After for a while (the other is a small, slow server that takes 2 calls at once from each worker), a worker
process is SIGKILLed every 10 seconds and replaced, the platform store drops its connections once, Redis is killed
and restarted, the S3 server is down for a few seconds, and Demo Billing answers 500s, then runs its erasures as
202 jobs for a while. Afterwards: every request completed once with one receipt, the log is consistent from its
first checkpoint to its last, every token is revoked at its network (the small one never answered more calls at
once than its catalogue entry allows), and every row, key, object and invoice is gone and counted once, in each
store.

OWNSTORY_SOAK_SIZE sets the number of people: 500 by default, OWNSTORY_SOAK_SIZE=2000 for issue 6's size. Each
fault comes within about 20 seconds of the first revocation or the first purge, or every KILL_EVERY seconds, and
500 people keep the workers busy well past that, even on an idle machine; more people add more of the same kills
and minutes to every `make test`, and nothing the checks below would catch otherwise. The checks assert that each fault
happened, so a run too short for one fails rather than passing without it. redis-server and SeaweedFS's weed are
needed: without them the soak is skipped, saying which is missing (in CI, it fails).
"""
from __future__ import annotations

import base64
import datetime as dt
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app import create_app
from bench import optouts
from bench.world import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, NETWORK_ENTRY, NETWORKS, gunicorn, web_processes, world
from demo import platform
from demo.models import Token
from erasure.models import Checkpoint, ErasureStep, OptOutRequest, Receipt
from erasure.verifier import merkle, note
from erasure.verifier.verify import Verifier
from tests.erasure.engine import helpers_soak_stores
from tests.erasure.engine.helpers_processes import MailSink, WorkerProcess, wait_for, worker_environ
from tests.erasure.engine.helpers_soak_stores import SoakStores
from tests.helpers_servers import serve

SIZE = int(os.environ.get("OWNSTORY_SOAK_SIZE") or 500)
WEB_PROCESSES = 3
WORKER_PROCESSES = 3
KILL_EVERY = 10.0  # seconds between SIGKILLs of a worker process
LEASE_SECONDS = 8  # a killed worker's steps are taken over this long after their claim
OUTAGE = 15.0  # seconds, from the first network's first revocation call: its revocation answers 503
RETRY_AFTER = 10  # seconds, in each 503: long enough that every worker holds the network (worker.HOLD_FROM)
# The other network is a small server: slow to answer, and its catalogue entry takes this many calls at once from
# all the worker processes together (revocation.max_in_flight). A SIGKILLed worker's calls may still be answered
# after its slots are free again: at most twice as many at once.
SMALL_NETWORK_IN_FLIGHT = 2
SMALL_NETWORK_SECONDS = 0.1
POSTS = 12
STAYERS = ("9000001", "9000002")  # two accounts that endorse everyone, are endorsed by everyone, and stay
SQL_ROWS = {"profile": 1, "posts": POSTS, "endorsements": 2, "endorsements received": 2,
            "influence scores": 1, "mailing list": 1}
EXPECTED_ROWS = {**SQL_ROWS, **helpers_soak_stores.EXPECTED_ROWS}  # each person's, by category, in every store
SUBMITTERS = 6  # HTTP clients submitting at once


# --- the revocation endpoint as the workers reach it ------------------------------------------------

@dataclass
class RevocationProxy:
    """A WSGI app in front of one Demo Social: forwards each revocation, records it by token, and
    answers 503 with Retry-After, without forwarding, while `unavailable` is set."""

    target: str
    seconds: float = 0.0  # how long it takes to answer, on top of Demo Social's own time
    unavailable: threading.Event = field(default_factory=threading.Event)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (token, hint, status answered)
    busiest: int = 0  # the most calls it was answering at once
    _answering: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def __call__(self, environ, start_response):
        with self._lock:
            self._answering += 1
            self.busiest = max(self.busiest, self._answering)
        try:
            time.sleep(self.seconds)
            return self._answer(environ, start_response)
        finally:
            with self._lock:
                self._answering -= 1

    def _answer(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        form = parse_qs(body.decode())
        token, hint = form.get("token", [""])[0], form.get("token_type_hint", [""])[0]
        if self.unavailable.is_set():
            status, headers, content = 503, [("Retry-After", str(RETRY_AFTER))], b'{"error": "temporarily_unavailable"}'
        else:
            if not hasattr(self._local, "http"):
                self._local.http = requests.Session()
            headers = {"Content-Type": environ.get("CONTENT_TYPE", ""),
                       "Authorization": environ.get("HTTP_AUTHORIZATION", "")}
            answer = self._local.http.post(self.target + environ["PATH_INFO"], data=body, headers=headers, timeout=30)
            status, headers, content = answer.status_code, [], answer.content
        with self._lock:
            self.calls.append((token, hint, status))
        start_response(f"{status} {'OK' if status == 200 else 'Error'}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(content))), *headers])
        return [content]

    def answered(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return list(self.calls)


# --- the processes --------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Workers:
    """WORKER_PROCESSES `flask worker` processes; kill_one() SIGKILLs the oldest, notes what it was
    running, and starts another in its place."""

    def __init__(self, env: dict[str, str], folder: Path, sessions) -> None:
        self.env, self.folder, self.sessions = env, folder, sessions
        self.all: list[WorkerProcess] = []
        self.running: list[WorkerProcess] = []
        self.cut: dict[str, int] = Counter()  # step id: how many times a kill cut it mid-run
        for _ in range(WORKER_PROCESSES):
            self._start()

    def _start(self) -> None:
        # `flask worker`'s own threads (16), as an operator runs it: 48 steps at once across the three
        worker = WorkerProcess(self.env, self.folder / f"worker-{len(self.all) + 1}.log", threads=None, tick=0.1)
        self.all.append(worker)
        self.running.append(worker)

    def kill_one(self) -> None:
        victim = self.running.pop(0)
        victim.kill()
        # The dead process can change nothing now: what it held is what it was doing.
        with self.sessions() as db:
            held = db.execute(select(ErasureStep.id, ErasureStep.lease_owner)
                              .where(ErasureStep.status == "running")).all()
        for step_id, owner in held:
            if victim.owns(owner):
                self.cut[step_id] += 1
        self._start()

    def stop(self) -> None:
        for worker in self.running:
            worker.stop()
        for worker in self.all:
            worker.kill()  # no-op for the stopped ones; closes every log


# --- the test ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_soak_many_processes_with_faults_lose_nothing_and_do_nothing_twice(database_url, tmp_path, monkeypatch):
    dialect = make_url(database_url).get_backend_name()
    if dialect != "postgresql":
        pytest.skip("the soak is for PostgreSQL (issue 6), the database many processes share; SQLite takes one "
                    "writer at a time, so 3 web and 3 worker processes there only wait for each other")
    helpers_soak_stores.require_servers()
    people = optouts.cohort(7, SIZE)
    with ExitStack() as stack:
        w = stack.enter_context(world(database_url))
        stores = SoakStores(tmp_path, stack, STAYERS)
        for variable, value in stores.environ.items():
            monkeypatch.setenv(variable, value)  # the data map reads its stores' settings from the environment
        with Path(w.environ["OWNSTORY_DATAMAP"]).open("a") as datamap:  # the tables, and the other stores
            datamap.write(helpers_soak_stores.DATAMAP)
        mail = MailSink()
        stack.callback(mail.close)
        small = NETWORKS[1]
        proxies = {key: RevocationProxy(url, SMALL_NETWORK_SECONDS if key == small else 0.0)
                   for key, url in w.networks.items()}
        servers = {key: serve(proxy) for key, proxy in proxies.items()}
        for server in servers.values():
            stack.callback(server.stop)
        networks_toml = tmp_path / "networks.toml"
        networks_toml.write_text("".join(
            NETWORK_ENTRY.format(key=key, url=servers[key].url, client_id=DEMO_CLIENT_ID,
                                 client_secret=DEMO_CLIENT_SECRET)
            + (f"max_in_flight = {SMALL_NETWORK_IN_FLIGHT}\n" if key == small else "") for key in NETWORKS))
        settings = {**w.environ, **stores.environ, "OWNSTORY_NETWORKS": str(networks_toml),
                    "OWNSTORY_SMTP_URL": mail.url, "OWNSTORY_ERASURE_LEASE_SECONDS": str(LEASE_SECONDS),
                    "OWNSTORY_ERASURE_RETRY_BASE_SECONDS": "0.2"}
        env = worker_environ(settings, database_url)

        # The world: tokens at both networks, rows on the platform, and each person signed up with both grants.
        started = time.monotonic()
        optouts.seed(w, people, posts=POSTS, stayers=STAYERS)
        stores.seed(people)
        app = create_app({"OUTBOX_PATH": tmp_path / "outbox", "JSON_LOGS": False}, environ=settings)
        stack.callback(app.extensions["datamap"].dispose)
        stack.callback(app.extensions["ownstory_db"]["engine"].dispose)
        optouts.sign_up(app, people)
        token = _service_token(app)
        sessions = app.extensions["ownstory_db"]["sessionmaker"]
        seeded = time.monotonic() - started

        master, base = stack.enter_context(gunicorn(env, tmp_path / "gunicorn.log", WEB_PROCESSES))
        web = web_processes(master.pid)
        assert len(web) == WEB_PROCESSES
        web_cpu = {pid: cpu_seconds(pid) for pid in web}
        stores.trust(base)
        workers = Workers(env, tmp_path, sessions)
        stack.callback(workers.stop)
        faults = Faults(proxies[NETWORKS[0]], workers, w.platform_url, sessions, base)
        stack.callback(faults.stop)
        faults.start()
        store_faults = stores.faults(sessions, faults.stopped)

        # Every opt-out through the service API of the web processes, each on a connection of its own,
        # as from many callers: a kept-alive connection would stay with the process that accepted it.
        def submit(person: optouts.Person) -> tuple[str, str]:
            answer = requests.post(f"{base}/api/v1/optouts", timeout=60, headers={
                "Authorization": f"Bearer {token}", "Connection": "close"}, json={
                "identities": [{"kind": "account", "network": NETWORKS[0], "value": person.account}], "scope": "all"})
            assert answer.status_code == 202, answer.text
            return person.account, answer.json()["id"]

        begun = time.monotonic()
        with ThreadPoolExecutor(SUBMITTERS) as pool:
            request_of = dict(pool.map(submit, people))
        submitted = time.monotonic() - begun
        assert len(set(request_of.values())) == SIZE

        def progress() -> bool:
            with sessions() as db:
                done = db.scalar(select(func.count()).select_from(OptOutRequest)
                                 .where(OptOutRequest.status == "completed"))
            return done == SIZE

        wait_for(progress, max(600.0, SIZE * 0.5), "every opt-out to complete", every=1.0)
        finished = time.monotonic() - begun
        faults.stop()
        store_faults.join(timeout=120)
        workers.stop()
        web_served = {pid: cpu_seconds(pid) - web_cpu[pid] for pid in web}
        checkpoints_seen = faults.witnessed()
        print(f"\nsoak on {dialect}: {SIZE} opt-outs; seeded in {seeded:.0f}s, submitted over HTTP in {submitted:.0f}s "
              f"({SIZE / submitted:.0f}/s), all completed {finished:.0f}s after the first submission "
              f"({SIZE / finished:.1f}/s); {len(workers.all) - WORKER_PROCESSES} workers killed, "
              f"{sum(workers.cut.values())} steps cut; {faults.dropped} store connections dropped; "
              f"web CPU seconds {sorted(round(s, 1) for s in web_served.values())}; "
              f"{len(checkpoints_seen)} checkpoints witnessed; redis restarted {stores.redis_restarts}, "
              f"S3 down {stores.s3_outages}, Demo Billing calls {dict(stores.billing.calls)}")

        # --- what it shows ---------------------------------------------------------------------------
        by_request = {request_id: account for account, request_id in request_of.items()}
        with sessions() as db:
            requests_ = list(db.scalars(select(OptOutRequest)))
            steps = list(db.scalars(select(ErasureStep)))
            receipts = list(db.scalars(select(Receipt).order_by(Receipt.leaf_index)))
            checkpoints = list(db.scalars(select(Checkpoint).order_by(Checkpoint.tree_size)))

        # Every request completed, exactly once, before its deadline, with one receipt.
        assert sorted(r.id for r in requests_) == sorted(by_request)
        assert Counter(r.status for r in requests_) == {"completed": SIZE}
        assert all(r.completed_at is not None and r.completed_at < r.deadline for r in requests_)
        assert {s.status for s in steps} == {"done"}
        assert len(receipts) == SIZE
        assert sorted(r.request_id for r in receipts) == sorted(by_request)
        assert {r.id: r.receipt_id for r in requests_} == {r.request_id: r.id for r in receipts}
        assert [r.leaf_index for r in receipts] == list(range(SIZE))

        # Each receipt verifies offline, says what happened, and was issued before the deadline.
        jwks = requests.get(f"{base}/.well-known/jwks.json", timeout=30).json()
        log_key = requests.get(f"{base}/api/v1/log/key", timeout=30).text.strip()
        verifier = Verifier(jwks, log_key)
        deadlines = {r.id: r.deadline for r in requests_}
        for receipt in receipts:
            report = verifier.verify(receipt.jws)
            assert report.valid, report.problems
            claims = report.claims
            assert claims["request_id"] == receipt.request_id
            assert {r["network"]: r["outcome"] for r in claims["revocations"]} == dict.fromkeys(NETWORKS, "revoked")
            assert {p["category"]: p["rows"] for p in claims["purged"]} == EXPECTED_ROWS
            assert claims["residual_rows"] == 0
            completed_at = dt.datetime.strptime(claims["completed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            assert completed_at < deadlines[receipt.request_id]

        # The log: every checkpoint signed by the log key, one per batch the sequencer appended (never two for
        # one tree size), the last one over every receipt, and each consistent with the ones before it, by the
        # proofs the API serves.
        signed_sizes = [c.tree_size for c in checkpoints]
        assert signed_sizes == sorted(set(signed_sizes)) and signed_sizes[-1] == SIZE
        opened = {c.tree_size: note.open_checkpoint(c.note, log_key) for c in checkpoints}
        assert all(opened[c.tree_size].size == c.tree_size and opened[c.tree_size].root == c.root for c in checkpoints)
        assert opened[SIZE].root == merkle.root_from_leaves([merkle.leaf_hash(r.jws.encode()) for r in receipts])
        # What an outside witness polled while it ran: never a step back, each one the same as stored.
        assert [c.size for c in checkpoints_seen] == sorted({c.size for c in checkpoints_seen})
        for seen in checkpoints_seen:
            assert opened[seen.size] == seen
        rng = random.Random(6)
        sizes = sorted({signed_sizes[0], SIZE, *rng.sample(signed_sizes, min(len(signed_sizes), 6)),
                        *(s.size for s in checkpoints_seen)})
        pairs = list(zip(sizes, sizes[1:])) + [(signed_sizes[0], SIZE), (sizes[len(sizes) // 2], SIZE)]
        for first, second in pairs:
            answer = requests.get(f"{base}/api/v1/log/proof/consistency", params={"first": first, "second": second},
                                  timeout=30)
            assert answer.status_code == 200, answer.text
            proof = [base64.b64decode(h) for h in answer.json()["hashes"]]
            assert merkle.verify_consistency(first, second, opened[first].root, opened[second].root, proof), (first,
                                                                                                             second)

        # Nothing lost: every token of every grant is revoked at its network, by the network's own store.
        for key, store in w.network_stores.items():
            engine = create_engine(store)
            with engine.connect() as conn:
                rows = conn.execute(select(Token.account_id, Token.access_token_revoked_at,
                                           Token.refresh_token_revoked_at)).all()
            engine.dispose()
            assert len(rows) == SIZE, key
            assert [r.account_id for r in rows if not (r.access_token_revoked_at and r.refresh_token_revoked_at)] == []

        # Nothing duplicated: two revocation calls a grant (refresh, then access), plus the 503s, plus
        # what a fault explains: a refresh token sent again after its access token got a 503, or a
        # step a SIGKILL cut short, run again from the start.
        revoke_steps = {(s.request_id, s.target): s for s in steps if s.kind == "revoke"}
        assert len(revoke_steps) == 2 * SIZE
        assert {s.result["outcome"] for s in revoke_steps.values()} == {"revoked"}
        token_of = {(p.account, key): p.tokens[key] for p in people for key in NETWORKS}
        summary = {"503s": 0, "refresh sent again after a 503": 0, "calls again after a kill": 0}
        for key, proxy in proxies.items():
            calls = proxy.answered()
            assert {status for _t, _h, status in calls} <= {200, 503}
            forwarded = Counter(t for t, _h, status in calls if status == 200)
            refused = Counter(t for t, _h, status in calls if status == 503)
            summary["503s"] += sum(refused.values())
            if key != NETWORKS[0]:
                assert not refused
            for account, request_id in request_of.items():
                access, refresh = token_of[(account, key)]
                step = revoke_steps[(request_id, key)]
                extra = forwarded[access] + forwarded[refresh] - 2
                after_503 = min(refused[access], forwarded[refresh] - 1)
                cuts = workers.cut[step.id]
                assert forwarded[access] >= 1 and forwarded[refresh] >= 1
                assert 0 <= extra <= after_503 + 2 * cuts, (key, account, forwarded[access], forwarded[refresh],
                                                            refused[access], cuts)
                summary["refresh sent again after a 503"] += after_503
                summary["calls again after a kill"] += extra - after_503
        assert summary["503s"] > 0, "the outage came before or after every revocation"
        print(f"revocation calls: {4 * SIZE} (2 a grant) + {summary}")
        # The small network never had more calls at once than its entry allows, 3 workers and 48 threads or not.
        at_once = {key: proxy.busiest for key, proxy in proxies.items()}
        print(f"revocation calls at once, at most: {at_once}")
        assert at_once[small] <= 2 * SMALL_NETWORK_IN_FLIGHT, at_once

        # Every row gone, each purge counted once: a purge step's rows are the person's rows, exactly (verify,
        # once access was revoked, found none late: nothing wrote to the platform meanwhile).
        for s in steps:
            if s.kind == "purge":
                for part in s.result["categories"]:
                    assert part["rows"] == EXPECTED_ROWS[part["category"]], (s.target, s.result)
            if s.kind == "verify":
                assert s.result["late_rows"] == [], s.result
        left = _platform_counts(w.platform_url)
        assert left == {"profiles": 0, "posts": 0, "endorsements by leavers": 0, "endorsements to leavers": 0,
                        "endorsements from stayers, receiver removed": 2 * SIZE, "scores": 0, "mailing_list": 0}

        # The other stores: each holds the stayers' data and nothing of the leavers', and Demo Billing ran
        # one erasure job a person (never a second one for a retried step), each deleting that person's invoices.
        assert stores.left() == stores.stayers_hold(SIZE)

        # Each person is told once; twice only where a kill cut the mail's step after it was sent.
        told = Counter(m.to for m in mail.mails if m.subject == "Your opt-out is complete")
        notify = {s.request_id: s for s in steps if s.kind == "notify"}
        email_of = {p.account: p.email for p in people}
        for request_id, account in by_request.items():
            assert 1 <= told[email_of[account]] <= 1 + workers.cut[notify[request_id].id]

        # The faults happened, and every process took part.
        assert len(workers.all) > WORKER_PROCESSES, "no worker was killed"
        assert faults.dropped > 0, "the platform store had no connection to drop"
        assert stores.redis_restarts == 1 and stores.s3_outages == 1, "a store's fault did not happen"
        assert stores.billing.calls["status"] > 0, "Demo Billing ran no erasure as a 202 job"
        assert min(web_served.values()) > 0.1 * max(web_served.values()), web_served  # CPU seconds each: all served
        for worker in workers.all:
            assert "failed unexpectedly" not in worker.output, worker.output[-3000:]




def _service_token(app) -> str:
    result = app.test_cli_runner().invoke(args=["tokens", "create", "--role", "service", "--name", "soak"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def _platform_counts(platform_url: str) -> dict[str, int]:
    engine = create_engine(platform_url)
    leavers = platform.endorsements.c.giver_id.not_in(STAYERS)
    with engine.connect() as conn:
        def count(table, *where) -> int:
            return conn.scalar(select(func.count()).select_from(table).where(*where))

        counts = {
            "profiles": count(platform.profiles),
            "posts": count(platform.posts),
            "endorsements by leavers": count(platform.endorsements, leavers),
            "endorsements to leavers": count(platform.endorsements, platform.endorsements.c.receiver_id.is_not(None),
                                             platform.endorsements.c.receiver_id.not_in(STAYERS)),
            "endorsements from stayers, receiver removed": count(
                platform.endorsements, platform.endorsements.c.giver_id.in_(STAYERS),
                platform.endorsements.c.receiver_id.is_(None)),
            "scores": count(platform.scores),
            "mailing_list": count(platform.mailing_list),
        }
    engine.dispose()
    return counts


class Faults:
    """The faults, each on its own clock: a revocation outage once revocations are under way, a SIGKILL
    every KILL_EVERY seconds from the start, and the platform store dropping its connections once purges are.
    Also an outside witness, fetching the latest checkpoint every second."""

    def __init__(self, proxy: RevocationProxy, workers: Workers, platform_url: str, sessions, base: str) -> None:
        self.proxy, self.workers, self.platform_url, self.sessions = proxy, workers, platform_url, sessions
        self.base = base
        self.dropped = 0
        self._stop = self.stopped = threading.Event()
        self._seen: list[note.Checkpoint] = []
        self._log_key: str | None = None
        self._threads = [threading.Thread(target=target, daemon=True)
                         for target in (self._outage, self._kills, self._drop, self._witness)]

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=60)
        self.proxy.unavailable.clear()

    def witnessed(self) -> list[note.Checkpoint]:
        return list(self._seen)

    def _at(self, seconds: float) -> bool:
        """Wait until `seconds` after the start; False if stopped first."""
        return not self._stop.wait(max(0.0, self.started + seconds - time.monotonic()))

    def _outage(self) -> None:
        """From the network's first revocation call on, for OUTAGE seconds. Timed from the workers' start, a
        slow start (each worker's imports, on a busy machine) could put every call after the outage."""
        while not self.proxy.answered() and not self._stop.wait(0.05):
            pass
        if not self._stop.is_set():
            self.proxy.unavailable.set()
            self._stop.wait(OUTAGE)
        self.proxy.unavailable.clear()

    def _kills(self) -> None:
        n = 1
        while self._at(n * KILL_EVERY):
            self.workers.kill_one()
            n += 1

    def _drop(self) -> None:
        """Once a purge is running and the platform store has connections, end every one of them (PostgreSQL).

        A purge step is running from its claim, before its worker has connected to the store: the first ones
        may have no connection yet, so the connections are looked for too."""
        def purging() -> bool:
            with self.sessions() as db:
                return bool(db.scalar(select(func.count()).select_from(ErasureStep).where(
                    ErasureStep.kind == "purge", ErasureStep.status == "running")))

        url = make_url(self.platform_url)
        name = url.query["application_name"]
        engine = create_engine(url.difference_update_query(["application_name", "options"]))
        try:
            while not self._stop.is_set() and not self.dropped:
                if purging():
                    with engine.begin() as conn:
                        self.dropped = conn.scalar(text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": name})
                self._stop.wait(0.2)
        finally:
            engine.dispose()

    def _witness(self) -> None:
        http = requests.Session()
        while not self._stop.wait(1.0):
            try:
                if self._log_key is None:
                    self._log_key = http.get(f"{self.base}/api/v1/log/key", timeout=10).text.strip()
                answer = http.get(f"{self.base}/api/v1/log/checkpoint", timeout=10)
            except requests.RequestException:
                continue
            if answer.status_code == 200:
                seen = note.open_checkpoint(answer.text, self._log_key)
                if not self._seen or self._seen[-1] != seen:
                    self._seen.append(seen)
