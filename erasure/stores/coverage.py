"""Where the data map and the stores disagree: tables in a store that no entry names, and that the map does not
say hold nothing about a person; tables and columns the map names that a store does not have; and the columns
purges search by that no index starts with.

Purge, export and the receipt cover what the map names, and only that. A table the platform added later, and
nobody mapped, would keep a leaver's data while their receipt says it is gone. `flask datamap check` names such
tables, every worker warns of them when it starts, and the health page and /metrics show them (through a Watch).
Table and column names only, never a row. A Redis key's or an object's name may itself name a person, so the keys
of a redis or s3 store that no entry reaches are counted (key_coverage), and their prefixes given only to
`flask datamap check --names`.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from app.db import utcnow
from erasure.stores.datamap import DataMap
from erasure.stores.kinds import Gaps, StoreError, Uncovered

log = logging.getLogger(__name__)
FAILS = "Purging them fails until the map or the store is mended"  # what a missing table or column means


@dataclass(frozen=True)
class Coverage:
    store: str
    kind: str
    gaps: Gaps | None  # None: not known (the kind cannot list what it holds, or the store could not be asked)
    unreachable: str | None = None  # why the store could not be asked

    @property
    def wrong(self) -> bool:
        """Something for an operator to mend: a gap either way, a column not there, or a store that could not be
        asked. A column without an index slows erasure but loses nothing: it is said, and is not wrong."""
        return self.unreachable is not None or bool(self.gaps and (
            self.gaps.unmapped or self.gaps.missing or self.gaps.missing_columns
            or (self.gaps.uncovered and self.gaps.uncovered.count)))

    def describe(self) -> str:
        """One line for an operator: the store, then what it found."""
        where = f"{self.store} ({self.kind})"
        if self.unreachable is not None:
            return f"{where}: not checked, {self.unreachable}"
        if self.gaps is None:
            return f"{where}: not checked, since a store of this kind cannot list what it holds; its entries are purged"
        gaps, found = self.gaps, []
        if gaps.unmapped:
            found.append(f"{_say(gaps.unmapped, '1 table is', '{n} tables are')} not in the data map: "
                         f"{', '.join(gaps.unmapped)}. Map each that holds anything about a person; list the others in "
                         "holds_no_personal_data")
        if gaps.missing:
            found.append(f"{_say(gaps.missing, '1 table is', '{n} tables are')} in the data map but not in the store: "
                         f"{', '.join(gaps.missing)}. {FAILS}")
        if gaps.missing_columns:
            found.append(f"{_say(gaps.missing_columns, '1 column is', '{n} columns are')} in the data map but not in "
                         f"its table: {', '.join(gaps.missing_columns)}. {FAILS}")
        if gaps.unindexed:
            found.append(f"{_say(gaps.unindexed, '1 column has', '{n} columns have')} no index that starts with "
                         f"{_say(gaps.unindexed, 'it', 'them')}: {', '.join(gaps.unindexed)}. Each purge and count "
                         f"of {_say(gaps.unindexed, 'it', 'them')} reads the whole table")
        if gaps.uncovered is not None:
            found.append(_uncovered(gaps.uncovered))
        elif not found:
            found.append("every table is in the data map or in holds_no_personal_data, and every table and column "
                         "the map names is there, indexed")
        return f"{where}: " + "; ".join(found)


def _uncovered(items: Uncovered) -> str:
    """How many of the items looked at no entry reaches: a number, since an item's name may name a person."""
    noun = items.noun
    looked = (f"its {_n(items.looked_at, noun)}" if items.complete
              else f"the first {_n(items.looked_at, noun)} it listed (a check looks at no more)")
    if not items.count:
        return (f"every one of {looked} is reached by an entry of the data map or by holds_no_personal_data"
                if items.looked_at else f"no {noun} to look at")
    article = "An" if noun[0] in "aeiou" else "A"
    return (f"{items.count:,} of {looked} {'is' if items.count == 1 else 'are'} reached by no entry of the data map "
            f"and not by holds_no_personal_data. {article} {noun}'s name may name a person, so none is shown here: "
            f"`flask --app wsgi datamap check --names` gives their prefixes. Map each that holds anything about a "
            f"person; list the others in holds_no_personal_data")


def _n(count: int, noun: str) -> str:
    return f"1 {noun}" if count == 1 else f"{count:,} {noun}s"


def names(found: Coverage) -> list[str]:
    """For `flask datamap check --names`: the prefixes of a store's items that no entry reaches, with how many."""
    items = found.gaps.uncovered if found.gaps else None
    if items is None or not items.count:
        return []
    lines = [f"  {prefix}  {_n(count, items.noun)}" for prefix, count in items.prefixes]
    if items.other_prefixes:
        lines.append(f"  and {items.other_prefixes:,} other prefixes")
    return lines


def _say(names: list[str], one: str, many: str) -> str:
    """`one` for a single name, else `many`, in which {n} is how many."""
    return one if len(names) == 1 else many.format(n=len(names))


def coverage(datamap: DataMap) -> Iterator[Coverage]:
    """Each store's coverage, in the file's order; a store that cannot be reached says so and the rest go on."""
    for store in datamap.stores:
        try:
            yield Coverage(store.name, store.kind, store.gaps())
        except StoreError as exc:
            yield Coverage(store.name, store.kind, None, exc.message)


class Watch:
    """The coverage the operators' health page shows: asked again at most every `every` seconds, in a thread of its
    own, so that a page waits on the stores `wait` seconds at most. One per process; the page says when it came."""

    def __init__(self, datamap: DataMap, every: float = 300.0, wait: float = 2.0) -> None:
        self._datamap, self._every, self._wait = datamap, every, wait
        self._lock = threading.Lock()
        self._asked_at = -math.inf  # time.monotonic() of the latest look begun
        self._looking: threading.Thread | None = None
        self.found: list[Coverage] | None = None  # None until a first look has answered
        self.found_at: dt.datetime | None = None

    def latest(self) -> list[Coverage] | None:
        """The latest answer, after a look begun now if the last is old and waited for `wait` seconds at most."""
        with self._lock:
            if self._looking is None and time.monotonic() - self._asked_at >= self._every:
                self._asked_at = time.monotonic()
                self._looking = threading.Thread(target=self._look, name="datamap-coverage", daemon=True)
                self._looking.start()
            looking = self._looking
        if looking is not None:
            looking.join(self._wait)
        return self.found

    def _look(self) -> None:
        try:
            found = list(coverage(self._datamap))
            with self._lock:
                self.found, self.found_at = found, utcnow()
        except Exception:  # a kind's own bug: logged, and the page keeps the last answer
            log.exception("data map: the coverage check failed")
        finally:
            with self._lock:
                self._looking = None


def warn_of_gaps(datamap: DataMap) -> threading.Thread:
    """Log a warning for each store that disagrees with the map (columns without an index too: this worker's purges
    would read whole tables), in a thread of its own: a store that is slow to answer holds up no worker's start."""

    def look() -> None:
        for found in coverage(datamap):
            if found.unreachable is not None:
                log.info("data map: %s", found.describe())  # the worker retries what it cannot reach
            elif found.wrong or (found.gaps and found.gaps.unindexed):
                log.warning("data map: %s", found.describe())

    thread = threading.Thread(target=look, name="datamap-coverage", daemon=True)
    thread.start()
    return thread
