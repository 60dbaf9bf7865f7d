"""Fixtures for the erasure tests: a worker in the test's process, run by the test a drain at a time, and
`flask worker` processes of their own, with a mail sink they send to."""
from __future__ import annotations

import pytest

from erasure.engine.worker import Worker
from tests.erasure.engine.helpers_processes import MailSink, WorkerProcess, worker_environ


@pytest.fixture
def worker(app):
    """The worker `flask worker` runs, on the test's app; closed, its steps under way finished, at the end."""
    w = Worker(app, threads=2)
    yield w
    w.close()


@pytest.fixture
def mail_sink():
    sink = MailSink()
    yield sink
    sink.close()


@pytest.fixture
def start_worker(test_environ, database_url, mail_sink, tmp_path):
    """Start a `flask worker` process on the test database; every one still running is killed afterwards,
    before the database fixture empties the tables it may be holding."""
    started: list[WorkerProcess] = []

    def start(threads: int | None = 4, **settings) -> WorkerProcess:
        env = worker_environ(test_environ, database_url, smtp_url=mail_sink.url, **settings)
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started) + 1}.log", threads=threads)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
