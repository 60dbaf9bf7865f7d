"""Call counting and fault injection for Demo Social, so tests can see and break its endpoints."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass


class CallCounter(Counter):
    """A Counter of calls per endpoint name; writes take a lock because the server is threaded."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def hit(self, name: str) -> None:
        with self._lock:
            self[name] += 1

    def reset(self) -> None:
        with self._lock:
            self.clear()


class UnderWay:
    """The calls each endpoint is answering now, and the most it answered at once: what a client's limit shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: Counter[str] = Counter()
        self.busiest: Counter[str] = Counter()

    def enter(self, name: str) -> None:
        with self._lock:
            self._now[name] += 1
            self.busiest[name] = max(self.busiest[name], self._now[name])

    def leave(self, name: str) -> None:
        with self._lock:
            self._now[name] -= 1

    def answering(self, name: str) -> int:
        with self._lock:
            return self._now[name]

    def reset(self) -> None:
        """Forget the most seen at once (the calls still being answered are still counted)."""
        with self._lock:
            self.busiest.clear()


@dataclass
class Fault:
    status: int | None = None
    retry_after: int | str | None = None
    delay: float = 0.0
    times: int | None = None  # None: until cleared


class Faults:
    """Per-endpoint faults: answer with a status, or sleep first, for the next N calls or until cleared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}

    def set(
        self,
        endpoint: str,
        *,
        status: int | None = None,
        retry_after: int | str | None = None,
        delay: float = 0.0,
        times: int | None = None,
    ) -> None:
        if status is None and not delay:
            raise ValueError("a fault needs a status, a delay or both")
        if status is not None and not 400 <= status <= 599:
            raise ValueError("a fault status must be an HTTP error status")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for until cleared")
        with self._lock:
            self._faults[endpoint] = Fault(status, retry_after, delay, times)

    def clear(self, endpoint: str | None = None) -> None:
        with self._lock:
            if endpoint is None:
                self._faults.clear()
            else:
                self._faults.pop(endpoint, None)

    def take(self, endpoint: str) -> Fault | None:
        """The fault for this call, if any, using up one of its remaining times."""
        with self._lock:
            fault = self._faults.get(endpoint)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[endpoint]
            return fault
