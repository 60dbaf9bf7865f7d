"""An s3 store's index tables: SQL tables that list which object keys hold a person's data.

For objects that are not laid out under a per-person prefix (uploads/7f3a.png, named by a random id), the
platform keeps a table beside them: a row per object, with the person's identity and the object's key. The
s3 kind reads the keys from it in batches, deletes each key's versions, then the rows themselves: the rows
name the person too, and a rerun must not find keys whose objects are already gone.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import column, delete, select, table
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from app.db import make_engine
from app.settings import ConfigError, resolve_database_url
from erasure.stores.config import identity_and_network, string
from erasure.stores.kinds import Entry, StoreMisconfigured, StoreUnavailable
from erasure.stores.purge import driver_reason

FIELDS = {"index_url", "index_url_env", "table", "column", "key_column", "category", "identity", "network"}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IN_CHUNK = 500  # identity values per IN list: far below every driver's parameter limit


@dataclass(frozen=True)
class IndexedEntry(Entry):
    """The objects whose keys `table.key_column` lists in the rows where `column` holds the person's value."""

    table: str
    column: str
    key_column: str
    url: str = field(repr=False)  # the index's database; may carry a password

    @property
    def key(self) -> str:
        return f"{self.table}.{self.key_column} by {self.column}"


def load_indexed(where: str, label: str, store: str, raw: Any, networks: Mapping | None,
                 environ: Mapping[str, str]) -> IndexedEntry:
    if not isinstance(raw, dict):
        raise ConfigError(where, label, "must be a table")
    for key in raw:
        if key not in FIELDS:
            raise ConfigError(where, f"{label}.{key}", "unknown field")
    if ("index_url" in raw) == ("index_url_env" in raw):
        raise ConfigError(where, f"{label}.index_url", "give exactly one of index_url and index_url_env")
    if "index_url_env" in raw:
        variable = string(where, f"{label}.index_url_env", raw["index_url_env"])
        url = environ.get(variable, "").strip()
        if not url:
            raise ConfigError(where, f"{label}.index_url_env", f"the environment variable {variable} is not set")
    else:
        url = string(where, f"{label}.index_url", raw["index_url"])
    if "://" not in url:
        raise ConfigError(where, f"{label}.index_url", "must be a SQLAlchemy URL, e.g. sqlite:///instance/platform.db")
    names = [_identifier(where, f"{label}.{f}", raw.get(f)) for f in ("table", "column", "key_column")]
    if names[1] == names[2]:
        raise ConfigError(where, f"{label}.key_column", "must differ from column, which holds the identity")
    category = string(where, f"{label}.category", raw.get("category"))
    identity, network = identity_and_network(where, label, raw, networks)
    return IndexedEntry(store, category, identity, network, names[0], names[1], names[2], resolve_database_url(url))


class IndexTables:
    """The index tables' databases, one engine each, made on first use and shared by every thread."""

    def __init__(self, store: str) -> None:
        self.store = store
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def keys(self, entry: IndexedEntry, values: list[str], size: int, after: str | None = None) -> list[str]:
        """The next `size` distinct object keys the person's rows list, in key order, after `after`."""
        t = _table(entry)
        key = t.c[entry.key_column]
        found: set[str] = set()
        with self._errors(entry), self._engine(entry).connect() as conn:
            for chunk in _chunks(values):
                query = select(key).distinct().where(t.c[entry.column].in_(chunk), key.is_not(None))
                if after is not None:
                    query = query.where(key > after)
                found.update(k for (k,) in conn.execute(query.order_by(key).limit(size)) if k)
        return sorted(found)[:size]

    def listed(self, entry: IndexedEntry, keys: list[str]) -> set[str]:
        """Which of these object keys the table lists, whoever they belong to (for `flask datamap check`)."""
        key = _table(entry).c[entry.key_column]
        with self._errors(entry), self._engine(entry).connect() as conn:
            return {k for chunk in _chunks(keys) for (k,) in conn.execute(select(key).distinct().where(key.in_(chunk)))}

    def forget(self, entry: IndexedEntry, values: list[str], keys: list[str]) -> None:
        """Delete the person's rows for these keys, whose objects are gone, in one transaction."""
        t = _table(entry)
        with self._errors(entry), self._engine(entry).begin() as conn:
            for chunk in _chunks(values):
                conn.execute(delete(t).where(t.c[entry.column].in_(chunk), t.c[entry.key_column].in_(keys)))

    def probe(self, entry: IndexedEntry) -> None:
        """Read nothing from the table, which must exist with both columns."""
        t = _table(entry)
        with self._errors(entry), self._engine(entry).connect() as conn:
            conn.execute(select(t.c[entry.column], t.c[entry.key_column]).limit(0)).all()

    def dispose(self, close: bool = True) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose(close=close)
            self._engines.clear()

    def _engine(self, entry: IndexedEntry) -> Engine:
        with self._lock:
            if entry.url not in self._engines:
                self._engines[entry.url] = make_engine(entry.url, autocommit=True)  # one statement each
            return self._engines[entry.url]

    @contextmanager
    def _errors(self, entry: IndexedEntry) -> Iterator[None]:
        """The driver's errors as the store's; their text would carry the person's values: only the class goes."""
        try:
            yield
        except (sa_exc.ProgrammingError, sa_exc.NoSuchTableError, sa_exc.IntegrityError) as exc:
            raise StoreMisconfigured(self.store, entry.key, f"the index table refused ({driver_reason(exc)})") from None
        except sa_exc.OperationalError as exc:
            if "no such" in str(getattr(exc, "orig", "")):  # SQLite's missing table or column
                raise StoreMisconfigured(self.store, entry.key, "the index table or a column is missing") from None
            raise StoreUnavailable(self.store, f"cannot reach the index table ({driver_reason(exc)})") from None
        except (sa_exc.DBAPIError, sa_exc.DisconnectionError, sa_exc.TimeoutError) as exc:
            raise StoreUnavailable(self.store, f"cannot reach the index table ({driver_reason(exc)})") from None


def _table(entry: IndexedEntry):
    return table(entry.table, column(entry.column), column(entry.key_column))


def _identifier(where: str, label: str, value: Any) -> str:
    value = string(where, label, value)
    if not NAME.match(value):
        raise ConfigError(where, label, f"{value!r} is not a plain table or column name")
    return value


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(values), IN_CHUNK):
        yield values[i:i + IN_CHUNK]
