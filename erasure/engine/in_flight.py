"""The revocation calls one worker process has under way at each network, at most the catalogue's max_in_flight.

A worker runs up to THREADS steps at once. When a crowd leaves, those are mostly revocations at the same network,
and a small server (a Mastodon instance) may refuse that many calls at once, or fall over. A step over its
network's limit waits here, in its thread, for a call to end: its place in the queue is kept, and no attempt is
spent on a call the network would have refused. The wait keeps the step's lease, as a long call would.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from consent.networks import Network


class InFlight:
    def __init__(self, wake_seconds: float) -> None:
        """`wake_seconds`: how long a waiting step sleeps before it keeps its lease, well within the lease."""
        self.wake_seconds = wake_seconds
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def call(self, network: Network | None, keep_lease: Callable[[], None]) -> Iterator[None]:
        """Hold one of the network's slots while the body runs; with no limit in the catalogue, go at once.

        `keep_lease` renews the step's lease: every `wake_seconds` while it waits, and once more when its turn
        comes. It may raise (the lease was lost: the step is not run)."""
        if network is None or network.revocation.max_in_flight is None:
            yield
            return
        slots = self._slots_of(network.key, network.revocation.max_in_flight)
        waited = not slots.acquire(blocking=False)
        while waited and not slots.acquire(timeout=self.wake_seconds):
            keep_lease()
        try:
            if waited:
                keep_lease()  # its calls start with a whole lease, as a step just claimed does
            yield
        finally:
            slots.release()

    def _slots_of(self, key: str, limit: int) -> threading.BoundedSemaphore:
        with self._lock:  # the catalogue is read once per process, so a network's limit never changes
            return self._slots.setdefault(key, threading.BoundedSemaphore(limit))
