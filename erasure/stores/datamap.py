"""The data map: where a person's data lives in the platform's stores, for counting, export and purge.

Each [[stores]] table is loaded by the store kind its `kind` names (`sql` when it names none), found
among the kinds registered under the entry point group `ownstory.stores` (erasure/stores/kinds.py).
"""
from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import ConfigError
from erasure.stores.config import max_in_flight
from erasure.stores.config import string as _string  # the name kinds written beside this one import
from erasure.stores.kinds import Entry, StoreKind, StoreMisconfigured, StoreUnavailable, registered_kinds

log = logging.getLogger(__name__)

DEFAULT_KIND = "sql"


@dataclass(frozen=True)
class Identities:
    """Everything that identifies one person: their subject id, email, and network accounts."""

    subject: str | None = None
    email: str | None = None
    accounts: tuple[tuple[str, str], ...] = ()  # (network, account id)
    handles: tuple[tuple[str, str], ...] = ()  # (network, handle)

    def values_for(self, entry: Entry) -> list[str]:
        return entry.values_in(self)


def identities_of(user, grants) -> Identities:
    """A signed-up person's identities, from their account and every grant they hold."""
    return Identities(
        subject=user.id,
        email=user.email,
        accounts=tuple(sorted({(g.network, g.account_id) for g in grants})),
        handles=tuple(sorted({(g.network, g.handle) for g in grants if g.handle})),
    )


class DataMap:
    """The loaded data map: its stores, each of its own kind, in the file's order."""

    def __init__(self, stores: tuple[StoreKind, ...]) -> None:
        self.stores = stores
        self._by_name = {store.name: store for store in stores}

    @property
    def entries(self) -> list[Entry]:
        return [entry for store in self.stores for entry in store.entries]

    def store(self, name: str) -> StoreKind:
        """The store named `name`; KeyError when the data map has none by that name (any longer)."""
        return self._by_name[name]

    def find(self, store: str, key: str) -> tuple[StoreKind, Entry] | None:
        """The store named `store` and its entry whose key is `key`; None when the map lists no such entry."""
        found = self._by_name.get(store)
        if found is not None:
            for entry in found.entries:
                if entry.key == key:
                    return found, entry
        return None

    def check(self) -> None:
        """Each store's start-up checks, once: those that need the store itself. Raises ConfigError."""
        for store in self.stores:
            store.check()

    def dispose(self, close: bool = True) -> None:
        """Drop every store's connections; after a fork, close=False leaves the parent's alone."""
        for store in self.stores:
            store.dispose(close=close)


@dataclass
class HeldCount:
    store: str
    category: str
    rows: int | None  # None: the store could not be reached just now


def count_held(datamap: DataMap, identities: Identities) -> list[HeldCount]:
    """What is held about a person, per store and category: one count per map entry, whatever the kind."""
    totals: dict[tuple[str, str], int | None] = {}
    for store in datamap.stores:
        wanted: list[tuple[Entry, list[str]]] = []
        for entry in store.entries:
            totals.setdefault((store.name, entry.category), 0)
            values = identities.values_for(entry)
            if values:
                wanted.append((entry, values))
        for (entry, _values), rows in zip(wanted, _counts(store, wanted), strict=True):
            key = (store.name, entry.category)
            held = totals[key]
            totals[key] = None if held is None or rows is None else held + rows
    return [HeldCount(store, category, rows) for (store, category), rows in totals.items()]


def _counts(store: StoreKind, wanted: list[tuple[Entry, list[str]]]) -> list[int | None]:
    """The store's counts for the entries, None where it cannot say just now."""
    if not wanted:
        return []
    try:
        return list(store.count_many(wanted))
    except StoreUnavailable as exc:
        log.warning("my data: %s", exc)
        return [None] * len(wanted)
    except StoreMisconfigured:
        pass  # one entry the store refuses: the others still count
    counts: list[int | None] = []
    for entry, values in wanted:
        try:
            counts.append(store.count(entry, values))
        except (StoreUnavailable, StoreMisconfigured) as exc:
            log.warning("my data: %s", exc)
            counts.append(None)
    return counts


def load_datamap(path: Path, networks: Mapping | None = None, environ: Mapping[str, str] | None = None,
                 kinds: Mapping[str, type[StoreKind]] | None = None) -> DataMap:
    """Parse and check the data map, each store by its kind. Raises ConfigError naming the file and the field.

    `kinds` defaults to every kind registered under the entry point group. Nothing here reaches a
    store: DataMap.check() does, once, at start-up.
    """
    environ = os.environ if environ is None else environ
    kinds = registered_kinds() if kinds is None else kinds
    where = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(where, "(file)", "not found (set OWNSTORY_DATAMAP or create it)") from None
    except OSError as exc:
        raise ConfigError(where, "(file)", f"cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "(file)", f"is not valid TOML: {exc}") from None
    unknown = set(raw) - {"stores"}
    if unknown:
        raise ConfigError(where, sorted(unknown)[0], "unknown key (expected [[stores]])")
    stores_raw = raw.get("stores", [])
    if not isinstance(stores_raw, list):
        raise ConfigError(where, "stores", "must be an array of tables ([[stores]])")
    stores = [_store(where, i, store_raw, networks, environ, kinds) for i, store_raw in enumerate(stores_raw)]
    names = [s.name for s in stores]
    for store in stores:
        if names.count(store.name) > 1:
            raise ConfigError(where, f"stores.{store.name}", "store names must be unique")
        keys = [entry.key for entry in store.entries]
        for key in keys:
            if keys.count(key) > 1:
                # An erasure step finds its entry again by this key: two alike would be one.
                raise ConfigError(where, f"stores.{store.name}", f"two entries are both {key!r}; each must differ")
    return DataMap(tuple(stores))


def _store(where: str, i: int, raw: Any, networks: Mapping | None, environ: Mapping[str, str],
           kinds: Mapping[str, type[StoreKind]]) -> StoreKind:
    label = f"stores[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(where, label, "must be a table")
    name = _string(where, f"{label}.name", raw.get("name"))
    label = f"stores.{name}"
    kind = raw.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str) or kind not in kinds:
        if not kinds:
            raise ConfigError(where, f"{label}.kind", "no store kinds are installed: run "
                                                     "`.venv/bin/pip install --no-deps -e .` (make does it)")
        raise ConfigError(where, f"{label}.kind", f"unknown kind {kind!r}; the known kinds are "
                                                 f"{', '.join(sorted(kinds))}")
    # Every kind's store may take only so many erasures at once (a team's service, a small object store): the
    # field is the data map's, checked here, and each kind is given the rest.
    limit = max_in_flight(where, label, raw)
    store = kinds[kind].load(where, label, {k: v for k, v in raw.items() if k != "max_in_flight"}, networks, environ)
    store.max_in_flight = limit
    return store
