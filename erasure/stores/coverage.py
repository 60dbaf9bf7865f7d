"""Where the data map and the stores disagree: tables in a store that no entry names, and that the map does not
say hold nothing about a person; and tables the map names that a store does not have.

Purge, export and the receipt cover what the map names, and only that. A table the platform added later, and
nobody mapped, would keep a leaver's data while their receipt says it is gone. `flask datamap check` names such
tables (and the missing ones), and every worker warns of them when it starts. Table names only: never a row.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from erasure.stores.datamap import DataMap
from erasure.stores.kinds import Gaps, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Coverage:
    store: str
    kind: str
    gaps: Gaps | None  # None: not known (the kind cannot list what it holds, or the store could not be asked)
    unreachable: str | None = None  # why the store could not be asked

    @property
    def wrong(self) -> bool:
        """Something for an operator to mend: a gap either way, or a store that could not be asked."""
        return self.unreachable is not None or bool(self.gaps and (self.gaps.unmapped or self.gaps.missing))

    def describe(self) -> str:
        """One line for an operator: the store, then what it found."""
        where = f"{self.store} ({self.kind})"
        if self.unreachable is not None:
            return f"{where}: not checked, {self.unreachable}"
        if self.gaps is None:
            return f"{where}: not checked, a {self.kind} store cannot list what it holds; its entries are purged"
        found = []
        if self.gaps.unmapped:
            found.append(f"{_tables(self.gaps.unmapped)} not in the data map: {', '.join(self.gaps.unmapped)}. Map "
                         "each that holds anything about a person; list the others in holds_no_personal_data")
        if self.gaps.missing:
            found.append(f"{_tables(self.gaps.missing)} in the data map but not in the store: "
                         f"{', '.join(self.gaps.missing)}. Purging them fails until the map or the store is mended")
        return f"{where}: " + ("; ".join(found) if found else
                               "every table is in the data map or in holds_no_personal_data, and every "
                                                                "table the map names is there")


def _tables(names: list[str]) -> str:
    return "1 table is" if len(names) == 1 else f"{len(names)} tables are"


def coverage(datamap: DataMap) -> Iterator[Coverage]:
    """Each store's coverage, in the file's order; a store that cannot be reached says so and the rest go on."""
    for store in datamap.stores:
        try:
            yield Coverage(store.name, store.kind, store.gaps())
        except StoreError as exc:
            yield Coverage(store.name, store.kind, None, exc.message)


def warn_of_gaps(datamap: DataMap) -> threading.Thread:
    """Log a warning for each store with tables the map does not cover, in a thread of its own: a store that is
    slow to answer holds up no worker's start."""

    def look() -> None:
        for found in coverage(datamap):
            if found.unreachable is not None:
                log.info("data map: %s", found.describe())  # the worker retries what it cannot reach
            elif found.wrong:
                log.warning("data map: %s", found.describe())

    thread = threading.Thread(target=look, name="datamap-coverage", daemon=True)
    thread.start()
    return thread
