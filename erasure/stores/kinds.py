"""Store kinds: what a data-map store can be (sql, redis, s3, http, or a platform's own), behind one interface.

Purge, verify, export, My data and retention call a store through `StoreKind` only, never knowing its kind.
A kind is a class registered under the Python entry point group `ownstory.stores` (the built-in kinds too,
in pyproject.toml), so a platform adds its own, a search index say, without forking Ownstory.

Every method that reaches the store raises `StoreUnavailable` when it cannot (a step retries later: what
was committed stays done) and `StoreMisconfigured` when the data map and the store disagree (a retry fails
the same way until one is fixed). Neither message may carry an identity value, a credential or a host.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from erasure.stores.datamap import Identities

ENTRY_POINT_GROUP = "ownstory.stores"
IDENTITY_KINDS = ("subject", "email", "account", "handle")


class StoreError(Exception):
    def __init__(self, store: str, message: str) -> None:
        super().__init__(f"store {store!r}: {message}")
        self.store, self.message = store, message


class StoreUnavailable(StoreError):
    """The store could not be reached, or failed mid-way. Retry: committed batches stay done.
    `retry_after`: the seconds the store asked to be left alone for (an HTTP Retry-After), if it said."""

    def __init__(self, store: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(store, message)
        self.retry_after = retry_after


class StoreMisconfigured(StoreError):
    """The data map and the store disagree. A retry fails the same way until one of them is fixed."""

    def __init__(self, store: str, table: str, message: str) -> None:
        super().__init__(store, f"{table!r}: {message}")
        self.table = table


@dataclass(frozen=True)
class Entry:
    """One thing a store holds about people: a category, found by one of a person's identities.

    `identity` is subject, email, account or handle; with account or handle, `network` says whose.
    A kind subclasses this with its own fields (a table and column, a key pattern, a key prefix).
    """

    store: str
    category: str
    identity: str
    network: str | None

    @property
    def key(self) -> str:
        """What tells this entry from the store's others, for a step's params; stable across restarts."""
        return self.category

    def values_in(self, identities: Identities) -> list[str]:
        """The person's values this entry matches, sorted; empty when the person has none of its kind."""
        if self.identity == "subject":
            return [identities.subject] if identities.subject else []
        if self.identity == "email":
            return [identities.email] if identities.email else []
        pairs = identities.accounts if self.identity == "account" else identities.handles
        return sorted({value for network, value in pairs if network == self.network})


@dataclass(frozen=True)
class Uncovered:
    """What a store's items (a cache's keys, a bucket's objects) that no entry reaches come to, where an item's name
    may itself name a person ("feed:omar"): counted for the operators' page, the logs and the metrics, never named
    there."""

    noun: str  # what an item is called: "key", "object"
    count: int  # items looked at that no entry reaches and holds_no_personal_data does not list
    looked_at: int  # items looked at
    complete: bool  # every item was looked at; else the first `looked_at` the store listed
    # Their most common prefixes ("dm:*") and how many each, for the operator who asks `flask datamap check
    # --names`; then how many other prefixes there were.
    prefixes: tuple[tuple[str, int], ...] = ()
    other_prefixes: int = 0


@dataclass(frozen=True)
class Gaps:
    """Where the data map and a store disagree on what the store holds, by name (a table's): never a row."""

    unmapped: list[str]  # the store has these, and the map neither names them nor says they hold nothing personal
    missing: list[str]  # the map names these, and the store has none of them: purging them fails
    # "table.column": columns the map names that their table lacks (purging them fails), and identity or timestamp
    # columns no index leads with (each purge and count of them reads the whole table)
    missing_columns: list[str] = field(default_factory=list)
    unindexed: list[str] = field(default_factory=list)
    uncovered: Uncovered | None = None  # for a kind whose items are named by data (Redis keys, objects), not tables


OnBatch = Callable[[int], None]
OnStarted = Callable[[dict], None]


class StoreKind(ABC):
    """One configured store of one kind, with its entries. Made by `load` at start-up; used by every worker
    thread at once, so an implementation keeps its client (engine, connection pool) thread-safe."""

    kind: ClassVar[str]
    # How many of its erasures (its purge steps, and verify's) may run at once, from all the workers together; None:
    # as many as they have threads. The data map's `max_in_flight`, any kind's: load_datamap sets it, and a kind's
    # load() never sees the field.
    max_in_flight: int | None = None

    def __init__(self, name: str, entries: tuple[Entry, ...]) -> None:
        self.name = name
        self.entries = entries

    @classmethod
    @abstractmethod
    def load(cls, where: str, label: str, raw: Mapping[str, Any], networks: Mapping | None,
             environ: Mapping[str, str]) -> StoreKind:
        """This kind's store from its [[stores]] table in the data map, checked without reaching the store:
        raise app.settings.ConfigError(where, "<label>.<field>", "what is wrong") on a mistake. Credentials
        come from the environment (`*_env` fields), never the file."""

    def check(self) -> None:  # noqa: B027 (an optional hook: most kinds have nothing to check)
        """Start-up checks that need the store itself (a bucket that must exist, say); raise ConfigError.
        Called once at start-up, after every store has loaded; by default there is nothing to check."""

    @abstractmethod
    def count(self, entry: Entry, values: list[str]) -> int:
        """How many items of the entry still hold one of the values: what verify needs to see at 0."""

    def count_many(self, wanted: list[tuple[Entry, list[str]]]) -> list[int]:
        """`count` for several entries of this store; a kind may do it in one round trip."""
        return [self.count(entry, values) for entry, values in wanted]

    @abstractmethod
    def purge(self, entry: Entry, values: list[str], on_batch: OnBatch | None = None,
              batch_size: int = 1000) -> int:
        """Delete (or unlink, or nullify) the entry's items for the values, in batches of at most batch_size,
        each one done for good before `on_batch(n)` is called, so a crash loses at most a batch and a rerun
        finishes the job. Returns how many items this run removed; a rerun after a finished run returns 0."""

    def purge_resuming(self, entry: Entry, values: list[str], job: dict | None, on_started: OnStarted,
                       on_batch: OnBatch | None = None) -> int:
        """`purge`, for a store whose purge may be a job of its own that outlives one attempt (an http
        service's 202). The first attempt passes job=None; a store that starts a job calls on_started(job)
        with a JSON-ready dict before it asks the store for anything, and the caller keeps that dict with its
        step; a retry passes it back, and the store follows the job it started rather than starting a second.
        Most stores have no jobs: by default this is `purge`."""
        return self.purge(entry, values, on_batch=on_batch)

    @abstractmethod
    def export(self, entry: Entry, values: list[str], batch_size: int = 1000) -> Iterator[list[dict]]:
        """The entry's items for the values, as JSON-ready dicts, in batches: memory stays bounded."""

    def describe(self, entry: Entry) -> dict[str, Any]:
        """What the export says about an entry besides its rows (table and column, key pattern, prefix)."""
        return {}

    def gaps(self) -> Gaps | None:
        """Where the data map and the store disagree on what the store holds (a sql store's tables, a redis or s3
        store's keys that no entry reaches); None when a kind cannot list what it holds. It reaches the store:
        StoreUnavailable when it cannot. Purge, export and the receipt cover what the map names, and only that."""
        return None

    def dispose(self, close: bool = True) -> None:  # noqa: B027 (an optional hook: some kinds hold no connections)
        """Drop the store's connections; after a fork, close=False leaves the parent's alone."""


def registered_kinds() -> dict[str, type[StoreKind]]:
    """Every kind installed under the entry point group, by name: the built-in ones and any platform's."""
    kinds: dict[str, type[StoreKind]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        kind = point.load()
        if not (isinstance(kind, type) and issubclass(kind, StoreKind)):
            raise TypeError(f"entry point {point.name!r} in {ENTRY_POINT_GROUP} is not a StoreKind class")
        kinds[point.name] = kind
    return kinds
