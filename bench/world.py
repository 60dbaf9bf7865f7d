"""The bench's world: Ownstory's database, a platform store, two Demo Social networks, and the settings."""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db import make_engine
from app.migrate import upgrade
from app.settings import ROOT

# The client `python -m demo` serves with (demo/__main__.py).
DEMO_CLIENT_ID, DEMO_CLIENT_SECRET = "demo-client", "demo-secret"
NETWORKS = ("demo", "demo2")  # two network keys, two Demo Social instances: every person holds two grants

NETWORK_ENTRY = """
[networks.{key}]
name = "Demo Social ({key})"
authorize_url = "{url}/oauth/authorize"
token_url = "{url}/oauth/token"
userinfo_url = "{url}/userinfo"
account_id_field = "sub"
handle_field = "preferred_username"
scopes = ["profile", "posts"]
client_id = "{client_id}"
client_secret = "{client_secret}"
token_endpoint_auth = "client_secret_basic"

[networks.{key}.revocation]
style = "rfc7009"
url = "{url}/oauth/revoke"
"""


@dataclass(frozen=True)
class World:
    folder: Path
    dialect: str
    database_url: str  # Ownstory's own database
    platform_url: str  # the platform store, as the data map names it
    networks: dict[str, str]  # network key: its Demo Social's base URL
    network_stores: dict[str, str]  # network key: its Demo Social's own database
    environ: dict[str, str]  # OWNSTORY_* settings for every Ownstory process of the bench

    @property
    def outbox(self) -> Path:
        return self.folder / "outbox"


@contextmanager
def world(database_url: str | None = None, network_latency_ms: float = 0.0) -> Iterator[World]:
    """Everything made fresh in a temporary folder (and fresh PostgreSQL schemas), and removed afterwards.

    `database_url`: Ownstory's database, migrated already, e.g. the test suite's; the platform store
    then goes next to it (a fresh schema of the same PostgreSQL database, or a SQLite file).
    `network_latency_ms`: how long each Demo Social answer takes, as a network across the internet would.
    """
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ownstory-bench-")))
        if database_url is None:
            database_url, platform_url = stack.enter_context(_databases(folder))
            upgrade(database_url)
        else:
            platform_url = stack.enter_context(_platform_store(folder, database_url))
        stores = {key: f"sqlite:///{folder / f'{key}.db'}" for key in NETWORKS}
        networks = {key: stack.enter_context(demo_social(folder, key, url, network_latency_ms))
                    for key, url in stores.items()}
        (folder / "networks.toml").write_text("".join(
            NETWORK_ENTRY.format(key=key, url=url, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)
            for key, url in networks.items()))
        # The shipped tables, not its billing service (last in the file): the bench times the tables.
        shipped = (ROOT / "config" / "datamap.toml").read_text().partition('[[stores]]\nname = "billing"')[0]
        (folder / "datamap.toml").write_text(shipped.replace('"sqlite:///instance/platform.db"', f'"{platform_url}"'))
        environ = {
            "OWNSTORY_ENV": "development",
            "OWNSTORY_DATABASE_URL": database_url,
            "OWNSTORY_BASE_URL": "http://127.0.0.1:5000",
            "OWNSTORY_SECRET_KEY": secrets.token_urlsafe(32),
            "OWNSTORY_TOKEN_KEYS": Fernet.generate_key().decode(),
            "OWNSTORY_PEPPER": secrets.token_urlsafe(32),
            "OWNSTORY_NETWORKS": str(folder / "networks.toml"),
            "OWNSTORY_DATAMAP": str(folder / "datamap.toml"),
            "OWNSTORY_PURPOSES": str(ROOT / "config" / "purposes.toml"),
            "OWNSTORY_SMTP_URL": "",
            "OWNSTORY_INLINE_WORKER": "0",
            "OWNSTORY_DEMO": "0",
        }
        yield World(folder, make_url(database_url).get_backend_name(), database_url, platform_url, networks,
                    stores, environ)


@contextmanager
def _databases(folder: Path) -> Iterator[tuple[str, str]]:
    """SQLite files, or two fresh schemas in OWNSTORY_TEST_DATABASE_URL's database, dropped at the end."""
    server = os.environ.get("OWNSTORY_TEST_DATABASE_URL", "").strip()
    if not server:
        yield f"sqlite:///{folder / 'ownstory.db'}", f"sqlite:///{folder / 'platform.db'}"
        return
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with _schema(server, name) as own, _schema(server, f"{name}_platform") as platform_url:
        yield own, platform_url


@contextmanager
def _platform_store(folder: Path, database_url: str) -> Iterator[str]:
    if make_url(database_url).get_backend_name() != "postgresql":
        yield f"sqlite:///{folder / 'platform.db'}"
        return
    with _schema(database_url, f"bench_{uuid.uuid4().hex[:8]}_platform") as url:
        yield url


@contextmanager
def _schema(server: str, schema: str) -> Iterator[str]:
    """A fresh schema, dropped at the end, and the URL of a connection that works in it.

    The connection is named after the schema (application_name), so that its sessions can be told
    apart in pg_stat_activity, e.g. by a test that drops them.
    """
    engine = make_engine(server)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield make_url(server).update_query_dict(
            {"options": f"-csearch_path={schema}", "application_name": schema}).render_as_string(False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def demo_social(folder: Path, key: str, store_url: str, latency_ms: float = 0.0) -> Iterator[str]:
    """`python -m demo` in a process of its own, as a real network would be."""
    port = free_port()
    with open(folder / f"{key}.log", "wb") as log:
        process = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
            [sys.executable, "-m", "demo", "--port", str(port), "--database", store_url,
             "--latency-ms", str(latency_ms)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@contextmanager
def gunicorn(environ: dict[str, str], log_path: Path, processes: int) -> Iterator[tuple[subprocess.Popen, str]]:
    """`gunicorn -c gunicorn.conf.py wsgi:app` with `processes` web processes on a free loopback port,
    serving once /readyz answers; yields the master process and the base URL, and SIGTERMs it at the end."""
    port = free_port()
    env = {**environ, "WEB_CONCURRENCY": str(processes), "OWNSTORY_BIND": f"127.0.0.1:{port}"}
    with open(log_path, "ab") as log:
        master = subprocess.Popen(  # noqa: S603 (our own command, fixed arguments)
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not _ready(base):
            if master.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not serve /readyz; see {log_path}")
            time.sleep(0.1)
        while len(web_processes(master.pid)) < processes and time.monotonic() < deadline:
            time.sleep(0.1)
        yield master, base
    finally:
        stop(master, timeout=30)


def web_processes(master_pid: int) -> list[int]:
    """The pids of a gunicorn master's web processes."""
    path = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    try:
        return [int(pid) for pid in path.read_text().split()]
    except OSError:
        return []


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:  # noqa: S310 (our own loopback URL)
            return answer.status == 200
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port} after {timeout:.0f}s")


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout:
        process.stdout.close()
