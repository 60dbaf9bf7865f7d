"""The `sql` store kind: tables in SQLite, PostgreSQL or MySQL/MariaDB, found by a column that names the person.

The kind reads its [[stores]] table and its [[stores.tables]] entries; purge.py does the batched
purges and counts, rows.py the reads, both on the store's one engine.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, inspect, literal
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, Inspector, make_url

from app.db import make_engine
from app.settings import ConfigError, resolve_database_url
from erasure.stores import config
from erasure.stores.kinds import Entry, Gaps, OnBatch, StoreKind, StoreUnavailable
from erasure.stores.purge import count_entries, count_entry, driver_reason, purge_entry, purge_rows, store_errors
from erasure.stores.rows import BATCH, identity_values, table_rows

ACTIONS = ("delete", "nullify")
STORE_FIELDS = {"name", "kind", "url", "url_env", "tables", "holds_no_personal_data"}
TABLE_FIELDS = {"table", "category", "column", "identity", "network", "action", "columns", "retention_days",
                "timestamp_column"}


@dataclass(frozen=True)
class TableEntry(Entry):
    """Rows of one table whose `column` holds one of the person's identity values."""

    table: str
    column: str
    action: str = "delete"  # delete the rows, or nullify `columns` in rows shared with others
    columns: tuple[str, ...] = ()
    retention_days: int | None = None
    timestamp_column: str | None = None  # with retention_days: rows older than that many days go

    @property
    def key(self) -> str:
        # Purge steps laid before store kinds named a table and a column: erasure/engine/steps.py
        # finds those entries again by this same "table.column".
        return f"{self.table}.{self.column}"


class SqlStore(StoreKind):
    """A SQL database reached through one SQLAlchemy engine, made on first use and shared by every thread."""

    kind = "sql"
    entries: tuple[TableEntry, ...]

    def __init__(self, name: str, url: str, entries: tuple[TableEntry, ...],
                 holds_no_personal_data: tuple[str, ...] = ()) -> None:
        super().__init__(name, entries)
        self.url = url  # may carry a password: kept out of repr, messages and logs
        self.holds_no_personal_data = holds_no_personal_data  # tables someone looked at: nothing about a person
        # Ownstory's own tables, where the store is Ownstory's database too (shares_database_with): the forget step
        # erases a person's records there, not purge, so the map does not name them.
        self.ownstorys_tables: frozenset[str] = frozenset()
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SqlStore {self.name!r}: {len(self.entries)} tables>"

    @classmethod
    def load(cls, where: str, label: str, raw: Mapping[str, Any], networks: Mapping | None,
             environ: Mapping[str, str]) -> SqlStore:
        for key in raw:
            if key not in STORE_FIELDS:
                raise ConfigError(where, f"{label}.{key}", "unknown field")
        name = config.string(where, f"{label}.name", raw.get("name"))
        if ("url" in raw) == ("url_env" in raw):
            raise ConfigError(where, f"{label}.url", "give exactly one of url and url_env")
        field = "url_env" if "url_env" in raw else "url"
        url = (config.from_environment(where, label, raw, "url", environ) if field == "url_env"
               else config.string(where, f"{label}.url", raw["url"]))
        _check_url(where, f"{label}.{field}", url, in_file=field == "url")
        tables_raw = raw.get("tables", [])
        if not isinstance(tables_raw, list):
            raise ConfigError(where, f"{label}.tables", "must be an array of tables ([[stores.tables]])")
        entries = tuple(_entry(where, f"{label}.tables[{j}]", name, t, networks) for j, t in enumerate(tables_raw))
        return cls(name, resolve_database_url(url), entries, _nothing_personal(where, label, raw, entries))

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                # Every purge, count and read of a store is a statement of its own: no BEGIN/COMMIT.
                self._engine = make_engine(self.url, autocommit=True)
            return self._engine

    def count(self, entry: Entry, values: list[str]) -> int:
        return count_entry(self.engine, _table(entry), values)

    def count_many(self, wanted: list[tuple[Entry, list[str]]]) -> list[int]:
        return count_entries(self.engine, [(_table(entry), values) for entry, values in wanted])

    def purge(self, entry: Entry, values: list[str], on_batch: OnBatch | None = None,
              batch_size: int = 1000) -> int:
        return purge_entry(self.engine, _table(entry), values, batch_size, on_batch)

    def purge_older(self, entry: TableEntry, before: dt.datetime, on_batch: OnBatch | None = None,
                    batch_size: int = 1000) -> int:
        """Retention: the entry's rows whose timestamp_column is older than `before`, whoever they are about."""
        stamp = entry.timestamp_column
        if stamp is None:
            raise ValueError(f"{entry.key} has no timestamp_column")
        cutoff = literal(before, DateTime(timezone=True))
        return purge_rows(self.engine, entry, lambda t: t.c[stamp] < cutoff, batch_size, on_batch,
                                extra=(stamp,))

    def identity_values(self, entry: TableEntry, batch_size: int) -> Iterator[list]:
        """The entry's distinct identity values, in order, a batch at a time (what a retention sweep checks)."""
        return identity_values(self.engine, entry, batch_size)

    def export(self, entry: Entry, values: list[str], batch_size: int = BATCH) -> Iterator[list[dict]]:
        table = _table(entry)
        batches = table_rows(self.engine, table, values, batch_size)
        while True:
            # The driver's errors become ours around each read, never around the yield: the caller's pass through.
            with store_errors(self.engine, table):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch

    def describe(self, entry: Entry) -> dict[str, Any]:
        table = _table(entry)
        return {"table": table.table, "column": table.column}

    def gaps(self) -> Gaps:
        """The tables of the store (its default schema's) that no entry names and holds_no_personal_data does not
        list, and the entries' tables the store lacks. Names compare without case, as SQLite and MySQL do."""
        mapped = {e.table for e in self.entries}
        if _sqlite_file_missing(self.url):  # connecting would make an empty one
            return Gaps(unmapped=[], missing=sorted(mapped))
        try:
            inspector = inspect(self.engine)
            tables = inspector.get_table_names()
            held = {t.casefold(): t for t in tables}
            missing_columns, unindexed = [], []
            for table, (searched, written) in sorted(_columns(self.entries).items()):
                if table.casefold() not in held:
                    continue
                found = _column_names(inspector, held[table.casefold()])
                missing_columns += [f"{table}.{c}" for c in sorted(searched | written) if c.casefold() not in found.all]
                unindexed += [f"{table}.{c}" for c in sorted(searched)
                              if c.casefold() in found.all and c.casefold() not in found.leading]
        except (sa_exc.DBAPIError, sa_exc.DisconnectionError, sa_exc.TimeoutError) as exc:
            raise StoreUnavailable(self.name, f"cannot reach or use the store ({driver_reason(exc)})") from None
        named = {t.casefold() for t in (*mapped, *self.holds_no_personal_data, *self.ownstorys_tables)}
        return Gaps(unmapped=sorted(t for t in tables if t.casefold() not in named),
                    missing=sorted(t for t in mapped if t.casefold() not in held),
                    missing_columns=missing_columns, unindexed=unindexed)

    def shares_database_with(self, url: str, tables: frozenset[str]) -> None:
        """Ownstory's database is at `url`, with `tables`: if it is this store's too, they are not the platform's."""
        def where(u: str) -> tuple:  # the driver and the credentials aside; the query holds a search_path
            parsed = make_url(u)
            return parsed.get_backend_name(), parsed.host, parsed.port, parsed.database, dict(parsed.query)

        if where(self.url) == where(url):
            self.ownstorys_tables = tables

    def dispose(self, close: bool = True) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose(close=close)
                self._engine = None


def _columns(entries: tuple[TableEntry, ...]) -> dict[str, tuple[set[str], set[str]]]:
    """Per table, the columns its entries search by (an identity column, a retention timestamp), which an index
    should lead with, and the columns they only write (nullified ones)."""
    by_table: dict[str, tuple[set[str], set[str]]] = {}
    for e in entries:
        searched, written = by_table.setdefault(e.table, (set(), set()))
        searched.update(c for c in (e.column, e.timestamp_column) if c)
        written.update(e.columns)
    return by_table


@dataclass(frozen=True)
class _Found:
    all: set[str]
    leading: set[str]  # the first column of an index, a primary key or a unique constraint: a lookup need not scan


def _column_names(inspector: Inspector, table: str) -> _Found:
    firsts: list[str | None] = [index["column_names"][0] for index in inspector.get_indexes(table)
                                if index["column_names"]]  # None: an index on an expression
    firsts += inspector.get_pk_constraint(table).get("constrained_columns", [])[:1]
    firsts += [unique["column_names"][0] for unique in inspector.get_unique_constraints(table)
               if unique["column_names"]]
    return _Found(all={c["name"].casefold() for c in inspector.get_columns(table)},
                  leading={c.casefold() for c in firsts if c})


def _sqlite_file_missing(url: str) -> bool:
    parsed = make_url(url)
    name = parsed.database or ""
    return (parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:") and not name.startswith("file:")
            and not Path(name).exists())


def _table(entry: Entry) -> TableEntry:
    if not isinstance(entry, TableEntry):
        raise TypeError(f"a sql store holds table entries, not {type(entry).__name__}")
    return entry


def _check_url(where: str, label: str, url: str, in_file: bool) -> None:
    """A SQLAlchemy URL with its driver installed, and no password unless it comes from the environment."""
    if "://" not in url:
        raise ConfigError(where, label, "must be a SQLAlchemy URL, e.g. sqlite:///instance/platform.db")
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise ConfigError(where, label, "is not a SQLAlchemy URL") from None
    if parsed.password is not None and in_file:
        raise ConfigError(where, label, "holds a password: credentials come from the environment, "
                                        "so put the URL in a variable and name it with url_env")
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, sa_exc.ArgumentError):
        raise ConfigError(where, label, f"no driver for {parsed.drivername!r} is installed "
                                        "(sqlite, postgresql+psycopg and mysql+pymysql are)") from None


def _nothing_personal(where: str, label: str, raw: Mapping[str, Any], entries: tuple[TableEntry, ...]
                      ) -> tuple[str, ...]:
    """`holds_no_personal_data`: tables the map leaves out on purpose (a migrations table, feature flags), so that
    `flask datamap check` names only the tables nobody has looked at."""
    field = f"{label}.holds_no_personal_data"
    listed = raw.get("holds_no_personal_data", [])
    if not isinstance(listed, list):
        raise ConfigError(where, field, "must be a list of table names")
    names = tuple(config.identifier(where, field, t) for t in listed)
    mapped = {e.table.casefold() for e in entries}
    for name in names:
        if name.casefold() in mapped:
            raise ConfigError(where, field, f"{name!r} is in this store's tables too: a table the map purges "
                                            "holds personal data")
    return names


def _entry(where: str, label: str, store: str, raw: Any, networks: Mapping | None) -> TableEntry:
    if not isinstance(raw, dict):
        raise ConfigError(where, label, "must be a table")
    for key in raw:
        if key not in TABLE_FIELDS:
            raise ConfigError(where, f"{label}.{key}", "unknown field")
    tname = config.identifier(where, f"{label}.table", raw.get("table"))
    category = config.string(where, f"{label}.category", raw.get("category"))
    col = config.identifier(where, f"{label}.column", raw.get("column"))
    identity, network = config.identity_and_network(where, label, raw, networks)
    action = raw.get("action", "delete")
    if action not in ACTIONS:
        raise ConfigError(where, f"{label}.action", "must be delete or nullify")
    columns = raw.get("columns", [])
    if not isinstance(columns, list):
        raise ConfigError(where, f"{label}.columns", "must be a list of column names")
    columns = tuple(config.identifier(where, f"{label}.columns", c) for c in columns)
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
        stamp = config.identifier(where, f"{label}.timestamp_column", stamp)
    return TableEntry(store=store, category=category, identity=identity, network=network, table=tname, column=col,
                      action=action, columns=columns, retention_days=retention, timestamp_column=stamp)
