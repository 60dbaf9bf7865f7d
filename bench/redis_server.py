"""A throwaway redis-server on a free loopback port, in a folder of its own: for the bench and the tests."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bench.world import free_port

BINARY = "redis-server"


def available() -> bool:
    return shutil.which(BINARY) is not None


class RedisServer:
    """Debian's redis-server, started and stopped by us. `persistent` keeps every write in an append-only
    file, fsynced before the server answers, so that a server killed mid-purge comes back with the batches
    it confirmed; without it, nothing reaches the disk. Restarts keep the port, as a real server's address."""

    def __init__(self, folder: Path, persistent: bool = False) -> None:
        self.folder = folder
        self.persistent = persistent
        self.port = 0  # picked at the first start
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client for seeding and looking: it fails at once when the server is down, never retrying."""
        return redis.Redis(host="127.0.0.1", port=self.port, retry=Retry(NoBackoff(), 0))

    def start(self) -> RedisServer:
        if self._process is not None:
            return self
        self.port = self.port or free_port()
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                       else ["--appendonly", "no"])
        self._process = subprocess.Popen(  # noqa: S603 (our own arguments)
            [BINARY, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder), "--save", "",
             *persistence, "--logfile", str(self.folder / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_ready()
        return self

    def kill(self) -> None:
        """Stop as a crash would: at once, without a last save."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_ready(self, timeout: float = 30) -> None:
        """Until PING answers: a server replaying its append-only file answers LOADING before that."""
        assert self._process is not None
        client = self.client()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self._process.returncode}; "
                                       f"see {self.folder / 'redis.log'}")
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    time.sleep(0.02)
        finally:
            client.close()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout:.0f}s")
