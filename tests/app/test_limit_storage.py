"""OWNSTORY_RATELIMIT_STORAGE_URL: web processes pointed at one redis-server share every limit.

Two real gunicorn processes, as an operator runs them, against a real redis-server (Debian's) on a
loopback port. In one Python process two apps would prove nothing: Flask-Limiter's limiter is one per
process and counts wherever the last app built points it.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from app.settings import ROOT
from tests.helpers_browser import free_port
from tests.helpers_servers import RedisServer, require_redis_server

SIGN_IN_PER_MINUTE = 10  # app/accounts.py: sign-in attempts per client address and minute


@pytest.fixture
def redis_server(tmp_path):
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(require_redis_server(), folder)
    yield server
    server.stop()


class WebProcess:
    """`gunicorn -c gunicorn.conf.py wsgi:app` with one web process, ended by its own pid only."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
            env={**env, "OWNSTORY_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "1"},
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.http = requests.Session()

    def wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if self.http.get(self.url + "/livez", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        pytest.fail(f"gunicorn did not answer within {timeout:.0f}s")

    def sign_in_wrongly(self, email: str) -> int:
        """A sign-in without a password: refused by the form (400) before any hashing, but counted."""
        page = self.http.get(self.url + "/login", timeout=10).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        answer = self.http.post(self.url + "/login", timeout=10,
                                data={"email": email, "password": "", "csrf_token": token})
        return answer.status_code

    def terminate(self) -> None:
        self.http.close()  # an open keep-alive connection would hold up gunicorn's graceful stop
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def web_processes(test_environ, database_url, tmp_path):
    """Start web processes with extra OWNSTORY_* settings; all are stopped at the end."""
    started: list[WebProcess] = []

    def start(count: int, **settings) -> list[WebProcess]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("OWNSTORY_")}
        env = {**base, **test_environ, "OWNSTORY_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1",
               **{f"OWNSTORY_{k.upper()}": str(v) for k, v in settings.items()}}
        new = [WebProcess(env, tmp_path / f"web-{len(started) + n}.log") for n in range(count)]
        started.extend(new)
        for process in new:
            process.wait_until_up()
        return new

    yield start
    for process in started:
        process.terminate()
    for process in started:
        process.stop()


def test_two_web_processes_share_a_limit_in_redis(redis_server, web_processes):
    first, second = web_processes(2, ratelimit_storage_url=redis_server.url)
    # Sign-ins from one address, taking turns between the processes, each for a different account.
    codes = [(first, second)[n % 2].sign_in_wrongly(f"guess{n}@example.org") for n in range(SIGN_IN_PER_MINUTE + 1)]
    assert codes[:SIGN_IN_PER_MINUTE] == [400] * SIGN_IN_PER_MINUTE
    assert codes[SIGN_IN_PER_MINUTE] == 429, "the limit was counted per process, not shared"

    # If Redis goes away, each process counts in its own memory until it is back: no page fails.
    redis_server.stop()
    assert first.sign_in_wrongly("after@example.org") in (400, 429)
    assert second.sign_in_wrongly("after@example.org") in (400, 429)
