"""MariaDB for the sql kind's tests: Debian's mariadbd on a free loopback port with a data folder of its own,
started once per run, or a clear skip where it is not installed (a failure in CI, whose .ci/run installs it)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymysql
import pytest

SBIN = "/usr/sbin:/usr/local/sbin"  # where Debian puts mariadbd, off a normal user's PATH


def _which(*names: str) -> str | None:
    path = f"{os.environ.get('PATH', '')}:{SBIN}"
    return next((found for name in names if (found := shutil.which(name, path=path))), None)


class MariaDB:
    """A throwaway server: root on loopback without a password, its files in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self._process: subprocess.Popen | None = None

    def start(self) -> MariaDB:
        server, install = _which("mariadbd", "mysqld"), _which("mariadb-install-db", "mysql_install_db")
        if server is None or install is None:
            raise RuntimeError("mariadbd or mariadb-install-db is missing")
        # As root, both need --user=root; as anyone else, the files are theirs anyway.
        user = ["--user=root"] if os.geteuid() == 0 else []
        data = self.folder / "data"
        subprocess.run([install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db", *user], check=True, capture_output=True, timeout=120)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._process = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.folder / 'mysqld.sock'}", f"--pid-file={self.folder / 'mysqld.pid'}",
             f"--log-error={self.folder / 'error.log'}", "--character-set-server=utf8mb4",
             "--collation-server=utf8mb4_general_ci", "--innodb-flush-log-at-trx-commit=0", "--skip-name-resolve",
             "--max-connections=300", *user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.admin().close()
                return self
            except pymysql.err.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = self.folder / "error.log"
                    said = log.read_text()[-2000:] if log.exists() else ""
                    self.stop()
                    raise RuntimeError(f"mariadbd did not start:\n{said}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def admin(self, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", database=database, autocommit=True,
                               connect_timeout=2)

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    @contextmanager
    def database(self, prefix: str = "t") -> Iterator[str]:
        """A fresh, empty database for one test (its URL), dropped afterwards with whatever is in it."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        try:
            yield self.url(name)
        finally:
            with self.admin() as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def kill_connections(self, database: str) -> int:
        """Cut every connection to `database`, as a server restart or a network fault would."""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                        (database,))
            ids = [row[0] for row in cur.fetchall()]
            for i in ids:
                cur.execute(f"KILL CONNECTION {int(i)}")
        return len(ids)


def require_mariadb() -> None:
    if _which("mariadbd", "mysqld") and _which("mariadb-install-db", "mysql_install_db"):
        return
    if os.environ.get("CI"):
        pytest.fail("Debian's mariadb-server is not installed; .ci/run should have installed it")
    pytest.skip("Debian's mariadb-server is not installed (apt-get install mariadb-server); CI installs it and "
                "runs this")


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory) -> Iterator[MariaDB]:
    """One MariaDB server for the whole run; tests take a database of their own on it (`mariadb.database()`)."""
    require_mariadb()
    server = MariaDB(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()
