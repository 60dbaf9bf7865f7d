"""`flask worker` stops on SIGTERM however busy its scheduler's own loop is at that moment."""
from __future__ import annotations

import os
import signal
import threading

from apscheduler.schedulers.blocking import BlockingScheduler

from erasure.engine.scheduler import stopper


def test_a_stop_signal_in_the_middle_of_the_schedulers_own_loop_ends_it_cleanly():
    # Many jobs due all the time keep the scheduler's loop (in this, the main thread) busy going through
    # them, so the signal lands inside it; a handler that shut it down there lost the jobs it was going
    # through, and start() raised JobLookupError in nearly every round.
    before = signal.getsignal(signal.SIGTERM)
    try:
        for _ in range(20):
            scheduler = BlockingScheduler(timezone="UTC")
            for n in range(200):
                scheduler.add_job(lambda: None, "interval", seconds=0.001, id=f"job-{n}", coalesce=True)
            signal.signal(signal.SIGTERM, stopper(scheduler))
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
            scheduler.start()  # returns once stopped; raised before
            assert not scheduler.running
    finally:
        signal.signal(signal.SIGTERM, before)
