"""When a worker takes its turn as the log's sequencer: at most once a second while it is busy, as soon as
it has handed off EVERY_LEAVES receipts, and before its drain returns (so a tick, or a test that drains,
sees its requests settled, and a receipt issued to an idle log is sequenced at once)."""
from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from app.db import utcnow
from erasure.context import ErasureContext
from erasure.receipts import sequencer

log = logging.getLogger(__name__)

EVERY_SECONDS = 1.0
EVERY_LEAVES = 256
WAIT = 2 * sequencer.LEASE.total_seconds()  # how long a drain waits for another sequencer before it returns
POLL = 0.05  # seconds between tries while another sequencer holds the lease


class Sequencing:
    """One worker's receipts handed off to the log's sequencer, and its turns at sequencing them."""

    def __init__(self, sessions: sessionmaker[Session], ctx: ErasureContext) -> None:
        self.sessions = sessions
        self.ctx = ctx
        self._handed_off = 0  # since this worker's last batch
        self._count = threading.Lock()
        self._last = time.monotonic()

    def handed_off(self) -> None:
        with self._count:
            self._handed_off += 1

    def pending(self) -> bool:
        return self._handed_off > 0

    def due_in(self) -> float | None:
        """Seconds until a turn is due while busy; None with nothing handed off."""
        if not self._handed_off:
            return None
        # Counted from the last try, taken or not: while another sequencer holds the lease, a busy worker
        # tries again a second later (or, with EVERY_LEAVES waiting, after POLL), never in a tight loop.
        every = POLL if self._handed_off >= EVERY_LEAVES else EVERY_SECONDS
        return max(0.0, every - (time.monotonic() - self._last))

    def wake_in(self) -> float:
        """How long a busy drain may wait for its threads before it looks again. Never forever, even with
        nothing handed off yet: its threads chain step after step without returning to it, and one of them
        may hand off a receipt meanwhile, which must then be sequenced within a second, not when the queue
        runs dry."""
        due = self.due_in()
        return EVERY_SECONDS if due is None else due

    def when_due(self) -> int:
        """A turn if one is due (see due_in); another sequencer at work is left to it. How many it logged."""
        due = self.due_in()
        return self.turn(patient=False) if due is not None and due <= 0 else 0

    def turn(self, patient: bool, stop: threading.Event | None = None) -> int:
        """Sequence the pool, batch after batch, until a batch takes all that is pooled when it begins; how many
        receipts were logged.

        `patient`: while another sequencer holds the lease, wait for it (up to WAIT, or until `stop`), then
        sequence whatever it left; everything handed off before the turn is logged when it ends, unless it
        gave up. Otherwise return at once: the other sequencer takes what is pooled, and the next turn
        whatever it left.
        """
        with self._count:
            counted = self._handed_off
        self._last = time.monotonic()
        owner = sequencer.me()
        give_up = time.monotonic() + WAIT
        logged = 0
        with self.sessions() as session:
            while True:
                try:
                    if sequencer.take_turn(session, owner, utcnow()):
                        batch = sequencer.append_batch(session, self.ctx.vault, self.ctx.log_origin, owner, utcnow)
                        logged += len(batch.logged)
                        if batch.more:
                            continue
                        # Everything handed off before this turn is logged. What was pooled while the batch ran
                        # waits for the next turn: a batch of its own now would sign a checkpoint for a few.
                        break
                except sequencer.LeaseLost:
                    log.warning("the log's sequencer lost its lease while it appended; trying again")
                if not patient or time.monotonic() > give_up or (stop is not None and stop.is_set()):
                    if patient:
                        log.warning("the log's sequencer is held elsewhere; the handed-off receipts wait for it")
                    return logged
                time.sleep(POLL)
        with self._count:
            self._handed_off -= counted
        return logged
