"""The calls one worker process has under way at each network or service that takes only so many at once.

A network's revocations are capped by the catalogue's `revocation.max_in_flight`, a service's erasures (an http
store's purge steps) by the data map's `max_in_flight`. A worker runs up to THREADS steps at once. When a crowd
leaves, those are mostly calls to the same few places, and a small server (a Mastodon instance, a team's service)
may refuse that many at once, or fall over. Once a network or service has as many of the worker's steps as it takes
calls, the worker claims no more of them (busy()), and its threads run everything else: other networks, other
stores. A step over the limit all the same (two threads claimed at the same moment) waits here, in its thread, for
a call to end, keeping its lease as a long call would, and spends no attempt on a call that would have been refused.

The limit holds across every worker process too: a call also takes one of the slots that all of them share
(slots.py). When another process holds them all, the step waits in its thread, looking again every
POLL_FIRST and up to POLL_MAX seconds, and this worker's claims pass the network or service over while one waits.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from erasure.engine.slots import LocalSlots, Slot, Slots, name_of

LOOK_AGAIN_FIRST = 1.0  # seconds: see to_pass_over
LOOK_AGAIN_MAX = 30.0
POLL_FIRST = 0.05  # seconds: a step waiting for a slot another process holds looks again this soon, then later
POLL_MAX = 0.5

Key = tuple[str, str]  # (the step's kind, its target): ("revoke", a network's key) or ("purge", a store's name)


@dataclass(frozen=True)
class Capped:
    """What a step calls that takes only `limit` calls at once: its kind and target, as queue.claim passes them over."""

    kind: str
    target: str
    limit: int

    @property
    def key(self) -> Key:
        return (self.kind, self.target)


class InFlight:
    def __init__(self, wake_seconds: float, shared: Slots | None = None) -> None:
        """`wake_seconds`: how long a waiting step sleeps before it keeps its lease, well within the lease.
        `shared`: the slots every worker process takes (slots.for_engine); by default this process's only."""
        self.wake_seconds = wake_seconds
        self.shared: Slots = shared or LocalSlots()
        self._lock = threading.Lock()
        self._slots: dict[Key, threading.BoundedSemaphore] = {}
        self._steps: dict[Key, int] = {}  # this worker's steps there, under way or waiting
        self._limits: dict[Key, int] = {}  # its max_in_flight
        self._waiting: dict[Key, int] = {}  # this worker's steps waiting for a slot other processes hold
        self._short_for: frozenset[Key] = frozenset()  # what the last claim that came back short passed over
        self._look_again_at = 0.0  # time.monotonic(): no claim passes those networks over before (to_pass_over)
        self._look_again_in = LOOK_AGAIN_FIRST

    @contextmanager
    def call(self, capped: Capped | None, keep_lease: Callable[[], None]) -> Iterator[None]:
        """Hold one of the network's or service's slots while the body runs; with no limit (None), go at once.

        `keep_lease` renews the step's lease: every `wake_seconds` while it waits, and once more when its turn
        comes. It may raise (the lease was lost: the step is not run)."""
        if capped is None:
            yield
            return
        key, limit = capped.key, capped.limit
        mine = self._enter(key, limit)
        try:
            waited = not mine.acquire(blocking=False)
            while waited and not mine.acquire(timeout=self.wake_seconds):
                keep_lease()
        except BaseException:
            self._leave(key)
            raise
        try:
            shared, waited_too = self._take_shared(key, limit, keep_lease)
            try:
                if waited or waited_too:
                    keep_lease()  # its calls start with a whole lease, as a step just claimed does
                yield
            finally:
                shared.release()
        finally:
            mine.release()
            self._leave(key)

    def _take_shared(self, key: Key, limit: int, keep_lease: Callable[[], None]) -> tuple[Slot, bool]:
        """One of the slots every process shares, waiting for it if other processes hold them all; and whether
        it waited."""
        name = name_of(*key)
        slot = self.shared.take(name, limit)
        if slot is not None:
            return slot, False
        delay, lease_kept = POLL_FIRST, time.monotonic()
        with self._lock:
            self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            while slot is None:
                time.sleep(delay)
                delay = min(2 * delay, POLL_MAX)
                if time.monotonic() - lease_kept >= self.wake_seconds:
                    keep_lease()
                    lease_kept = time.monotonic()
                slot = self.shared.take(name, limit)
        finally:
            with self._lock:
                self._waiting[key] -= 1
        return slot, True

    def busy(self) -> frozenset[Key]:
        """The networks with as many of this worker's steps under way or waiting as they take calls at once, or
        whose every slot other worker processes hold: the worker claims no more of their revocations until
        one ends (queue.claim's `busy`)."""
        with self._lock:
            return self._busy()

    def to_pass_over(self) -> frozenset[Key] | None:
        """busy(), for a claim; or None, claim nothing now: a claim that passed them over found nothing else lately.

        A claim reads the due steps in order until it has what it asked for. Passing over a busy network's
        revocations, it reads every one of them when nothing else is due: with 100,000 people waiting at one
        small network, PostgreSQL took 1.1 to 1.4 s a claim. So once such a claim comes back short, the next
        waits, 1 s and doubling up to LOOK_AGAIN_MAX while they keep coming back short; meanwhile the threads
        that end a call there claim its next revocation, and the follow-up steps of the ones done."""
        with self._lock:
            busy = self._busy()
            # Only a claim that would pass over all that one did: with fewer networks busy, it may find theirs.
            if busy and self._short_for and busy >= self._short_for and time.monotonic() < self._look_again_at:
                return None
            return busy

    def claimed(self, passed_over: frozenset[Key], short: bool) -> None:
        """What a claim that passed over `passed_over` found: less than it asked for (`short`), or all of it."""
        if not passed_over:
            return
        with self._lock:
            if short:
                self._short_for = passed_over
                self._look_again_at = time.monotonic() + self._look_again_in
                self._look_again_in = min(2 * self._look_again_in, LOOK_AGAIN_MAX)
            else:
                self._short_for, self._look_again_in = frozenset(), LOOK_AGAIN_FIRST

    def _busy(self) -> frozenset[Key]:
        """busy(), under the lock: the networks this worker has at their limit, or has a step waiting at for a slot
        other worker processes hold."""
        return frozenset(key for key, steps in self._steps.items()
                         if steps >= self._limits[key] or self._waiting.get(key, 0))

    def _enter(self, key: Key, limit: int) -> threading.BoundedSemaphore:
        with self._lock:  # the catalogue and the data map are read once per process: a limit never changes
            self._steps[key] = self._steps.get(key, 0) + 1
            self._limits[key] = limit
            return self._slots.setdefault(key, threading.BoundedSemaphore(limit))

    def _leave(self, key: Key) -> None:
        with self._lock:
            self._steps[key] -= 1
