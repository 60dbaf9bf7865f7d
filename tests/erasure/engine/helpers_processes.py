"""Fault-test helpers: real `flask worker` processes, a mail server they can reach, and a crowd of people to leave."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import signal
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

from sqlalchemy import create_engine, select, text

from app.settings import ROOT
from tests.conftest import DEMO_CLIENT_ID

# The platform store's tables (demo/platform.py) and the columns that name a person in each.
# Written out here, not read from the data map, so that the tests check the map rather than repeat it.
PERSON_COLUMNS = {
    "profiles": ("account_id", "handle"),
    "posts": ("author_id",),
    "endorsements": ("giver_id", "receiver_id"),
    "scores": ("handle",),
    "mailing_list": ("email",),
}


def wait_for(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.05):
    """Poll until predicate() is truthy and return it; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# --- worker processes -----------------------------------------------------------------------------

class WorkerProcess:
    """One `flask --app wsgi worker` process, its output in a file, ended by its own pid only."""

    def __init__(self, env: dict[str, str], log_path: Path, threads: int | None = 4, tick: float = 0.1) -> None:
        """threads=None: `flask worker`'s own default."""
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in wait()
        options = [] if threads is None else ["--threads", str(threads)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", *options, "--tick", str(tick)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.process.pid

    def owns(self, lease_owner: str | None) -> bool:
        """Whether a step's lease_owner (host:pid:nonce) is this process: never a receipt step handed off to
        the log's sequencer (erasure/engine/handoff.py)."""
        parts = (lease_owner or "").split(":")
        return len(parts) >= 3 and parts[-2] == str(self.pid)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no finally blocks, exactly as a machine that loses power."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.wait()

    def stop(self) -> None:
        """SIGTERM, the way an operator stops a worker; SIGKILL if it does not go within 15 seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
        self.wait()

    def wait(self) -> None:
        self.process.wait()
        if not self._log.closed:
            self._log.close()

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_environ(test_environ: dict[str, str], database_url: str, **overrides) -> dict[str, str]:
    """The environment of a worker process: the test's settings, its database, nothing from the developer's shell."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OWNSTORY_")}
    return {**base, **test_environ, "OWNSTORY_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1",
            **{f"OWNSTORY_{k.upper()}": str(v) for k, v in overrides.items()}}


# --- a mail server the workers can reach ----------------------------------------------------------

@dataclass
class Mail:
    to: str
    subject: str
    body: str


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib.send_message: EHLO, MAIL, RCPT, DATA, QUIT."""

    def handle(self) -> None:
        sink: MailSink = self.server.sink  # type: ignore[attr-defined]
        self._reply(220, "sink ready")
        while line := self.rfile.readline():
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb == "DATA":
                self._reply(354, "go ahead")
                raw = bytearray()
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    raw += data[1:] if data.startswith(b"..") else data
                message = BytesParser(policy=policy.default).parsebytes(bytes(raw))
                sink.add(Mail(str(message["To"]), str(message["Subject"]), message.get_content()))
                self._reply(250, "queued")
            elif verb == "QUIT":
                self._reply(221, "bye")
                return
            elif verb in ("EHLO", "HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                self._reply(250, "ok")
            else:
                self._reply(502, "not implemented")

    def _reply(self, code: int, text_: str) -> None:
        self.wfile.write(f"{code} {text_}\r\n".encode())


class _SmtpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class MailSink:
    """An SMTP server on a loopback port that keeps every message, for OWNSTORY_SMTP_URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._server = _SmtpServer(("127.0.0.1", 0), _SmtpHandler)
        self._server.sink = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self._server.server_address[1]}"

    def add(self, mail: Mail) -> None:
        with self._lock:
            self._mails.append(mail)

    @property
    def mails(self) -> list[Mail]:
        with self._lock:
            return list(self._mails)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- a crowd of people, each with a Demo Social grant and platform rows ---------------------------

@dataclass
class Member:
    user_id: str
    email: str
    account: str
    handle: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    held: dict[str, int] = field(default_factory=dict)  # rows per data-map category, counted before leaving


def issue_demo_tokens(demo_app, accounts: list[str]) -> list[dict]:
    """Real Demo Social tokens for these accounts, written through Demo Social's own models.

    The OAuth flow knows five demo accounts only; a crowd needs more. The tokens are the
    network's own rows, so its RFC 7009 and RFC 7662 endpoints revoke and introspect them.
    """
    from demo.models import Token, now

    state = demo_app.extensions["demo"]
    issued = [{"access_token": secrets.token_urlsafe(32), "refresh_token": secrets.token_urlsafe(32),
               "token_type": "Bearer", "expires_in": 3600, "scope": "profile posts"} for _ in accounts]
    with state.db_lock, state.sessions.begin() as db:
        db.add_all(Token(client_id=DEMO_CLIENT_ID, account_id=account, token_type="Bearer",
                         access_token=t["access_token"], refresh_token=t["refresh_token"], scope=t["scope"],
                         issued_at=now(), expires_in=t["expires_in"])
                   for account, t in zip(accounts, issued, strict=True))
    return issued


def demo_revoked(demo_app, tokens: list[str]) -> dict[str, bool]:
    """Whether Demo Social holds each token (access or refresh) as revoked, read from its store."""
    from demo.models import Token

    state = demo_app.extensions["demo"]
    found: dict[str, bool] = {}
    with state.db_lock, state.sessions() as db:
        for row in db.scalars(select(Token).where(
                Token.access_token.in_(tokens) | Token.refresh_token.in_(tokens))):
            found[row.access_token] = bool(row.access_token_revoked_at)
            found[row.refresh_token] = bool(row.refresh_token_revoked_at)
    return {t: found.get(t, False) for t in tokens}


def make_crowd(app, demo_app, platform_url: str, size: int, first_account: int = 50000) -> list[Member]:
    """`size` signed-up people, each with a Demo Social grant holding real tokens, consent to scoring,
    and rows on the platform."""
    from app.accounts import create_user
    from app.db import utcnow
    from app.extensions import db
    from consent.grants import store_grant
    from consent.service import set_consents
    from erasure.context import context_from_app

    accounts = [str(first_account + n) for n in range(size)]
    tokens = issue_demo_tokens(demo_app, accounts)
    ctx = context_from_app(app)
    network, vault = ctx.networks["demo"], ctx.vault
    crowd: list[Member] = []
    with app.app_context():
        for n, (account, token) in enumerate(zip(accounts, tokens, strict=True)):
            handle, email = f"crowd{account}", f"crowd{account}@example.org"
            user = create_user(db.session, email, secrets.token_urlsafe(12))
            store_grant(db.session, vault, user.id, network, token, {"sub": account, "preferred_username": handle},
                        utcnow())
            set_consents(db.session, user.id, {("demo", "scoring")}, ctx.purposes, {"demo"}, utcnow())
            crowd.append(Member(user.id, email, account, handle, token["access_token"], token["refresh_token"]))
        db.session.commit()
    add_platform_rows(platform_url, crowd)
    for member in crowd:
        member.held = held_rows(platform_url, member)
    return crowd


def add_platform_rows(platform_url: str, crowd: list[Member]) -> None:
    """Rows about each member, of every kind the platform keeps, mixed in with the people already there.

    Endorsements go to and come from people who stay (2001-2003), so the rows shared with others
    are nullified, never deleted, and every count is the same whichever worker gets there first.
    """
    engine = create_engine(platform_url)
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        for n, m in enumerate(crowd):
            conn.execute(text("INSERT INTO profiles (account_id, handle, display_name, bio) VALUES (:a, :h, :d, '')"),
                         {"a": m.account, "h": m.handle, "d": f"Member {n}"})
            conn.execute(text("INSERT INTO posts (author_id, body, created_at) VALUES (:a, :b, :t)"),
                         [{"a": m.account, "b": f"post {i} by {m.handle}", "t": at} for i in range(1 + n % 5)])
            conn.execute(text("INSERT INTO endorsements (giver_id, receiver_id, topic) VALUES (:g, :r, 'music')"),
                         [{"g": m.account, "r": "2001"}, {"g": m.account, "r": "2002"},
                          {"g": "2003", "r": m.account}, {"g": "2001", "r": m.account}])
            conn.execute(text("INSERT INTO scores (handle, score, computed_at) VALUES (:h, 50.5, :t)"),
                         {"h": m.handle, "t": at})
            conn.execute(text("INSERT INTO mailing_list (email, subscribed_at) VALUES (:e, :t)"),
                         {"e": m.email, "t": at})
    engine.dispose()


def held_rows(platform_url: str, member) -> dict[str, int]:
    """Rows per data-map category that name the member, counted straight from the store."""
    queries = {
        "profile": ("SELECT count(*) FROM profiles WHERE account_id = :v", member.account),
        "posts": ("SELECT count(*) FROM posts WHERE author_id = :v", member.account),
        "endorsements": ("SELECT count(*) FROM endorsements WHERE giver_id = :v", member.account),
        "endorsements received": ("SELECT count(*) FROM endorsements WHERE receiver_id = :v", member.account),
        "influence scores": ("SELECT count(*) FROM scores WHERE handle = :v", member.handle),
        "mailing list": ("SELECT count(*) FROM mailing_list WHERE email = :v", member.email),
    }
    engine = create_engine(platform_url)
    with engine.connect() as conn:
        held = {category: conn.scalar(text(sql), {"v": value}) for category, (sql, value) in queries.items()}
    engine.dispose()
    return held


def submit_all(app, crowd: list[Member], scope: str = "all") -> list[str]:
    """Each member opts out, through the same service call as the form; returns the request ids."""
    from app.db import utcnow
    from app.extensions import db
    from app.models import User
    from consent.service import grants_of
    from erasure.context import context_from_app
    from erasure.optout import service

    ctx = context_from_app(app)
    ids = []
    with app.app_context():
        for member in crowd:
            user = db.session.get(User, member.user_id)
            grants = grants_of(db.session, user.id)
            db.session.commit()  # the reads end: submit takes the write lock as its transaction's first statement
            submitted = service.submit(db.session, ctx, user=user, grants=grants, scope=scope, now=utcnow())
            db.session.commit()
            ids.append(submitted.request.id)
    return ids


# --- the platform store, before and after ---------------------------------------------------------

def snapshot(platform_url: str) -> dict[str, list[tuple]]:
    """Every row of every platform table, in key order."""
    engine = create_engine(platform_url)
    with engine.connect() as conn:
        rows = {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))] for t in PERSON_COLUMNS}
    engine.dispose()
    return rows


def digest(rows: dict[str, list[tuple]]) -> str:
    h = hashlib.sha256()
    for table in sorted(rows):
        for row in rows[table]:
            h.update(repr((table, row)).encode())
    return h.hexdigest()


def without(before: dict[str, list[tuple]], accounts: set[str], handles: set[str], emails: set[str],
            columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """What the store must hold once these identities have left: their rows deleted, their name
    taken out of endorsements they received, every other row exactly as it was."""
    def col(table: str, row: tuple, name: str):
        return row[columns[table].index(name)]

    after: dict[str, list[tuple]] = {}
    after["profiles"] = [r for r in before["profiles"] if col("profiles", r, "account_id") not in accounts]
    after["posts"] = [r for r in before["posts"] if col("posts", r, "author_id") not in accounts]
    receiver = columns["endorsements"].index("receiver_id")
    after["endorsements"] = [
        r if r[receiver] not in accounts else r[:receiver] + (None,) + r[receiver + 1:]
        for r in before["endorsements"] if col("endorsements", r, "giver_id") not in accounts]
    after["scores"] = [r for r in before["scores"] if col("scores", r, "handle") not in handles]
    after["mailing_list"] = [r for r in before["mailing_list"] if col("mailing_list", r, "email") not in emails]
    return after


def column_names(platform_url: str) -> dict[str, list[str]]:
    engine = create_engine(platform_url)
    with engine.connect() as conn:
        names = {t: list(conn.execute(text(f"SELECT * FROM {t} LIMIT 0")).keys()) for t in PERSON_COLUMNS}
    engine.dispose()
    return names


def naming(platform_url: str, values: set[str]) -> list[tuple[str, tuple]]:
    """Every row, in any table, with a person-naming column that holds one of `values`."""
    found = []
    names_of = column_names(platform_url)
    for table, rows in snapshot(platform_url).items():
        names = names_of[table]
        for row in rows:
            if any(row[names.index(c)] in values for c in PERSON_COLUMNS[table]):
                found.append((table, row))
    return found


def to_wal(platform_url: str) -> None:
    """Switch the platform store to WAL first, as the workers' engines will: a test can then hold its
    write lock while they still read."""
    path = platform_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


class StoreWriteLock:
    """Another program holding the platform store's write lock: reads go on, writes wait."""

    def __init__(self, platform_url: str) -> None:
        self._conn = sqlite3.connect(platform_url.removeprefix("sqlite:///"), isolation_level=None)

    def __enter__(self) -> StoreWriteLock:
        self._conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc_info) -> None:
        self._conn.execute("ROLLBACK")
        self._conn.close()
