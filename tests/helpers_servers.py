"""LiveServer: runs any WSGI app on a real loopback port in a thread, and can take it down and up again;
RedisServer: a throwaway redis-server on a loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    # Access lines would carry query strings (codes, state) into test output; errors still log.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LiveServer:
    """A WSGI app on http://<host>:<port>. Stopping it refuses connections, as a network that is down."""

    def __init__(self, app: Callable, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> None:
        self.app = app
        self.host = host
        self.port = port  # 0 until started: the OS picks a free port, then restarts reuse it
        self.quiet = quiet
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LiveServer:
        if self._server is not None:
            return self
        handler = _QuietHandler if self.quiet else None
        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=handler)
        self.port = self._server.server_port
        # A short poll interval makes stop() quick: shutdown() waits for the loop's next wake-up.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"live-server-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()  # stop accepting; requests already running finish in their own threads
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LiveServer {self.host}:{self.port or '?'} {state}>"


def serve(app: Callable, host: str = "127.0.0.1", port: int = 0) -> LiveServer:
    """Start app on a free loopback port; use the result as a context manager or call .stop()."""
    return LiveServer(app, host, port).start()


# --- redis-server, Debian's, for the rate limiter's shared storage ------------------------------------

REDIS_SERVER = "redis-server"


def require_redis_server() -> str:
    """The redis-server binary: skipped without it outside CI, a failure in CI (.ci/run installs it)."""
    found = shutil.which(REDIS_SERVER)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("Debian's redis-server is not installed; .ci/run should have installed it")
    pytest.skip("Debian's redis-server is not installed (apt-get install redis-server); CI installs it and runs this")


class RedisServer:
    """A throwaway redis-server on a free loopback port, its files in a temp folder, ended by its own pid."""

    def __init__(self, binary: str, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._log = open(folder / "redis.log", "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(folder),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_until_ready()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _wait_until_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
