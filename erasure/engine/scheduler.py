"""Ticking the worker with APScheduler: `flask worker` in its own process, or inline under `make run`."""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from app.db import utcnow
from erasure.agents import wiring as agents
from erasure.engine.worker import THREADS, Worker
from erasure.retention import sweeps as retention
from erasure.stores import coverage

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
# A tick a second would fill the log with APScheduler's own lines; its warnings still show.
logging.getLogger("apscheduler").setLevel(logging.WARNING)
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)  # "skipped: max instances" is normal


def _tick(worker: Worker) -> None:
    """Drain what is due, then wait for the next tick; APScheduler never runs two ticks at once."""
    try:
        # Each round claims for the threads that are free. A tick that ends waits up to `tick` for the
        # next one, so a busy queue is drained in long ticks; SIGTERM still stops it after the steps under way.
        worker.drain(max_rounds=10_000)
    except Exception:
        # A database that is briefly away must not stop the worker: the next tick tries again.
        log.exception("worker tick failed")


def _sweep(worker: Worker) -> None:
    """A retention sweep (erasure.retention), unless another worker runs one or ran one just now."""
    try:
        with worker.sessions() as session:
            retention.sweep(session, worker.ctx, utcnow(), owner=worker.owner,
                            every=retention.every(worker.app) / 2, lease=max(worker.lease, retention.LEASE))
    except Exception:
        log.exception("retention sweep failed")


def _schedule(scheduler, worker: Worker, tick: float) -> None:
    scheduler.add_job(_tick, "interval", args=[worker], seconds=tick, max_instances=1, coalesce=True,
                      id="erasure-tick")
    # Authorized agents' statuses and callbacks, in a job of their own: a slow agent never holds up a step.
    scheduler.add_job(agents.tick, "interval", args=[worker.app, worker.sessions], seconds=tick, max_instances=1,
                      coalesce=True, id="drp-callbacks")
    scheduler.add_job(_sweep, "interval", args=[worker], seconds=retention.every(worker.app).total_seconds(),
                      max_instances=1, coalesce=True, id="retention-sweep")


def stopper(scheduler: BlockingScheduler) -> Callable[[int, FrameType | None], None]:
    """A signal handler that stops a blocking scheduler, once, however many signals come.

    Not in the handler itself: it runs in the main thread, which may be inside the scheduler's own loop,
    holding its job stores' lock (re-entrant, so the handler takes it too); a shutdown there removes the jobs
    the loop is updating, and `flask worker` exited on SIGTERM with a JobLookupError. A thread of its own
    waits for the loop to let go of the lock, then stops it.
    """
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=scheduler.shutdown, kwargs={"wait": False}, name="stop").start()

    return stop


def run_forever(app: Flask, threads: int = THREADS, tick: float = TICK_SECONDS) -> None:
    """`flask worker`: block, ticking, until SIGTERM or SIGINT."""
    worker = Worker(app, threads=threads)
    scheduler = BlockingScheduler(timezone="UTC")
    _schedule(scheduler, worker, tick)

    stop = stopper(scheduler)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("worker %s started", worker.owner)
    coverage.warn_of_gaps(app.extensions["datamap"])
    try:
        scheduler.start()
    finally:
        worker.close()
        log.info("worker %s stopped", worker.owner)


_inline_lock = threading.Lock()


def start_inline(app: Flask, tick: float = TICK_SECONDS) -> BackgroundScheduler:
    """OWNSTORY_INLINE_WORKER=1: the same loop in a thread of the web process (one process only)."""
    with _inline_lock:
        if "ownstory_inline_worker" in app.extensions:
            return app.extensions["ownstory_inline_worker"]
        worker = Worker(app, threads=2)
        scheduler = BackgroundScheduler(timezone="UTC", daemon=True)
        _schedule(scheduler, worker, tick)
        scheduler.start()
        coverage.warn_of_gaps(app.extensions["datamap"])
        app.extensions["ownstory_inline_worker"] = scheduler
        return scheduler
