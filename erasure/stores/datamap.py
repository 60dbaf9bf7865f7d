"""The data map: where a person's data lives in the platform's stores, for counting, export and purge."""
from __future__ import annotations

import os
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import column, func, select, table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.db import make_engine
from app.settings import ConfigError, resolve_database_url

IDENTITY_KINDS = ("subject", "email", "account", "handle")
ACTIONS = ("delete", "nullify")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
STORE_FIELDS = {"name", "url", "url_env", "tables"}
TABLE_FIELDS = {"table", "category", "column", "identity", "network", "action", "columns", "retention_days",
                "timestamp_column"}


@dataclass(frozen=True)
class TableEntry:
    store: str
    table: str
    category: str
    column: str
    identity: str
    network: str | None
    action: str
    columns: tuple[str, ...] = ()
    retention_days: int | None = None
    timestamp_column: str | None = None  # with retention_days: rows older than that many days go


@dataclass(frozen=True)
class Store:
    name: str
    url: str = field(repr=False)  # may carry a password
    tables: tuple[TableEntry, ...]


@dataclass(frozen=True)
class Identities:
    """Everything that identifies one person: their subject id, email, and network accounts."""

    subject: str | None = None
    email: str | None = None
    accounts: tuple[tuple[str, str], ...] = ()  # (network, account id)
    handles: tuple[tuple[str, str], ...] = ()  # (network, handle)

    def values_for(self, entry: TableEntry) -> list[str]:
        if entry.identity == "subject":
            return [self.subject] if self.subject else []
        if entry.identity == "email":
            return [self.email] if self.email else []
        pairs = self.accounts if entry.identity == "account" else self.handles
        return sorted({value for network, value in pairs if network == entry.network})


def identities_of(user, grants) -> Identities:
    """A signed-up person's identities, from their account and every grant they hold."""
    return Identities(
        subject=user.id,
        email=user.email,
        accounts=tuple(sorted({(g.network, g.account_id) for g in grants})),
        handles=tuple(sorted({(g.network, g.handle) for g in grants if g.handle})),
    )


class DataMap:
    """The parsed data map, with one lazily made engine per store."""

    def __init__(self, stores: tuple[Store, ...]) -> None:
        self.stores = stores
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    @property
    def entries(self) -> list[TableEntry]:
        return [entry for store in self.stores for entry in store.tables]

    def engine(self, store_name: str) -> Engine:
        with self._lock:
            if store_name not in self._engines:

                store = next(s for s in self.stores if s.name == store_name)
                # Every purge, count and read of a store is a statement of its own: no BEGIN/COMMIT.
                self._engines[store_name] = make_engine(store.url, autocommit=True)
            return self._engines[store_name]

    def dispose(self, close: bool = True) -> None:
        """Drop every store's engine; after a fork, close=False leaves the parent's connections alone."""
        with self._lock:
            for engine in self._engines.values():
                engine.dispose(close=close)
            self._engines.clear()


def entry_table(entry: TableEntry, *extra: str):
    """A lightweight SQLAlchemy table for an entry: names are quoted, never pasted into SQL."""
    names = {entry.column, *entry.columns, *extra}
    return table(entry.table, *(column(n) for n in sorted(names)))


@dataclass
class HeldCount:
    store: str
    category: str
    rows: int | None  # None: the store could not be reached just now


def count_held(datamap: DataMap, identities: Identities) -> list[HeldCount]:
    """Rows held about a person, per store and category: one COUNT per map entry."""
    totals: dict[tuple[str, str], int | None] = {}
    for entry in datamap.entries:
        key = (entry.store, entry.category)
        values = identities.values_for(entry)
        if not values:
            totals.setdefault(key, 0)
            continue
        t = entry_table(entry)
        try:
            with datamap.engine(entry.store).connect() as conn:
                rows = conn.execute(
                    select(func.count()).select_from(t).where(t.c[entry.column].in_(values))).scalar_one()
        except SQLAlchemyError:
            totals[key] = None
            continue
        held = totals.get(key, 0)
        if held is not None:
            totals[key] = held + rows
    return [HeldCount(store, category, rows) for (store, category), rows in totals.items()]


def load_datamap(path: Path, networks: Mapping | None = None, environ: Mapping[str, str] | None = None) -> DataMap:
    """Parse and check the data map. Raises ConfigError naming the file and the field."""
    environ = os.environ if environ is None else environ
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
    stores: list[Store] = []
    for i, store_raw in enumerate(stores_raw):
        stores.append(_store(where, i, store_raw, networks, environ))
    names = [s.name for s in stores]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(where, f"stores.{name}", "store names must be unique")
    return DataMap(tuple(stores))


def _store(where: str, i: int, raw, networks, environ) -> Store:
    label = f"stores[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(where, label, "must be a table")
    for key in raw:
        if key not in STORE_FIELDS:
            raise ConfigError(where, f"{label}.{key}", "unknown field")
    name = _string(where, f"{label}.name", raw.get("name"))
    label = f"stores.{name}"
    if ("url" in raw) == ("url_env" in raw):
        raise ConfigError(where, f"{label}.url", "give exactly one of url and url_env")
    if "url_env" in raw:
        var = _string(where, f"{label}.url_env", raw["url_env"])
        url = environ.get(var, "")
        if not url:
            raise ConfigError(where, f"{label}.url_env", f"the environment variable {var} is not set")
    else:
        url = _string(where, f"{label}.url", raw["url"])
    if "://" not in url:
        raise ConfigError(where, f"{label}.url", "must be a SQLAlchemy URL, e.g. sqlite:///instance/platform.db")
    tables_raw = raw.get("tables", [])
    if not isinstance(tables_raw, list):
        raise ConfigError(where, f"{label}.tables", "must be an array of tables ([[stores.tables]])")
    tables = tuple(_entry(where, f"{label}.tables[{j}]", name, t, networks) for j, t in enumerate(tables_raw))
    return Store(name=name, url=resolve_database_url(url), tables=tables)


def _entry(where: str, label: str, store: str, raw, networks) -> TableEntry:
    if not isinstance(raw, dict):
        raise ConfigError(where, label, "must be a table")
    for key in raw:
        if key not in TABLE_FIELDS:
            raise ConfigError(where, f"{label}.{key}", "unknown field")
    tname = _identifier(where, f"{label}.table", raw.get("table"))
    category = _string(where, f"{label}.category", raw.get("category"))
    col = _identifier(where, f"{label}.column", raw.get("column"))
    identity = raw.get("identity")
    if identity not in IDENTITY_KINDS:
        raise ConfigError(where, f"{label}.identity", f"must be one of {', '.join(IDENTITY_KINDS)}")
    network = raw.get("network")
    if identity in ("account", "handle"):
        network = _string(where, f"{label}.network", network)
        if networks is not None and network not in networks:
            raise ConfigError(where, f"{label}.network", f"{network!r} is not in the network catalogue")
    elif network is not None:
        raise ConfigError(where, f"{label}.network", "only account and handle identities name a network")
    action = raw.get("action", "delete")
    if action not in ACTIONS:
        raise ConfigError(where, f"{label}.action", "must be delete or nullify")
    columns = raw.get("columns", [])
    if not isinstance(columns, list):
        raise ConfigError(where, f"{label}.columns", "must be a list of column names")
    columns = tuple(_identifier(where, f"{label}.columns", c) for c in columns)
    if action == "nullify" and not columns:
        raise ConfigError(where, f"{label}.columns", "nullify needs the columns to set to NULL")
    if action == "delete" and columns:
        raise ConfigError(where, f"{label}.columns", "columns only go with action = \"nullify\"")
    retention = raw.get("retention_days")
    if retention is not None and (isinstance(retention, bool) or not isinstance(retention, int) or retention < 1):
        raise ConfigError(where, f"{label}.retention_days", "must be a whole number of days, at least 1")
    stamp = raw.get("timestamp_column")
    if retention is not None and stamp is None:
        raise ConfigError(where, f"{label}.timestamp_column",
                          "retention_days needs the column that says when each row was written")
    if stamp is not None:
        if retention is None:
            raise ConfigError(where, f"{label}.timestamp_column", "only goes with retention_days")
        stamp = _identifier(where, f"{label}.timestamp_column", stamp)
    return TableEntry(store, tname, category, col, identity, network, action, columns, retention, stamp)


def _string(where: str, label: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, label, "is required and must be a non-empty string")
    return value.strip()


def _identifier(where: str, label: str, value) -> str:
    value = _string(where, label, value)
    if not NAME.match(value):
        raise ConfigError(where, label, f"{value!r} is not a plain table or column name")
    return value
