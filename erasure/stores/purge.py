"""Purging a table entry of a sql store: committed batches, bounded memory, errors a step can retry."""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BindParameter,
    Delete,
    Select,
    Update,
    and_,
    any_,
    bindparam,
    cast,
    column,
    delete,
    func,
    inspect,
    or_,
    select,
    table,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement, TableClause

from app import driver
from erasure.stores.kinds import StoreError, StoreMisconfigured, StoreUnavailable

if TYPE_CHECKING:
    from erasure.stores.sql import TableEntry


IN_CHUNK = 500  # identity values per IN list: far below every driver's parameter limit
VALUES = "person_values"  # the bound IN list of a prepared statement: a name no column of a store's table takes

# A table without a primary key is still batched by the row's physical address. That address
# is only stable within one statement, but each batch picks and changes its rows in one statement.
# MySQL and MariaDB have none, and need none: their DELETE and UPDATE take a LIMIT of their own.
ROW_ADDRESS = {"sqlite": "rowid", "postgresql": "ctid"}


class TableMisconfigured(StoreMisconfigured):
    """StoreMisconfigured, saying that what the store lacks or refuses is a table's."""

    def __init__(self, store: str, table: str, message: str) -> None:
        StoreError.__init__(self, store, f"table {table!r}: {message}")
        self.table = table


def entry_table(entry: TableEntry, *extra: str):
    """A lightweight SQLAlchemy table for an entry: names are quoted, never pasted into SQL."""
    names = {entry.column, *entry.columns, *extra}
    return table(entry.table, *(column(n) for n in sorted(names)))


def holds(col: ColumnElement, values: list[str] | BindParameter, dialect: str) -> ColumnElement[bool]:
    """`col IN values`, compared exactly, on every store. `values` may be a list, or an expanding
    bindparam (see `bound`) for a statement built once and run for many people.

    MySQL and MariaDB compare text by the column's collation, which usually ignores case, accents
    and trailing spaces: 'Omar' = 'omar ' = 'ömar'. The IN list still finds those through the
    column's index, and comparing the bytes keeps only the person's own.
    """
    found = col.in_(values)
    if dialect != "mysql":
        return found
    if isinstance(values, BindParameter):
        return and_(found, exact(col).in_(bindparam(f"{values.key}_bytes", expanding=True)))
    return and_(found, exact(col).in_([v.encode() for v in values]))


def bound(name: str, values: list[str], dialect: str) -> dict[str, list]:
    """The parameters for `holds(col, bindparam(name, expanding=True), dialect)`."""
    if dialect == "mysql":
        return {name: values, f"{name}_bytes": [v.encode() for v in values]}
    return {name: values}


def exact(col: ColumnElement) -> ColumnElement:
    """MySQL/MariaDB: the column's value as utf8mb4 bytes, which compare as they are, whatever its charset."""
    return cast(cast(col, mysql.CHAR(charset="utf8mb4")), mysql.BINARY())


@dataclass(frozen=True)
class _Shape:
    key: tuple[str, ...]  # the primary key columns, or the row address; on MySQL/MariaDB maybe none
    nullable: dict[str, bool]  # every column, and whether it may hold NULL


# Reflected once per engine and table: a purge of many people must not re-read the catalogue each time.
_shapes: weakref.WeakKeyDictionary[Engine, dict[str, _Shape]] = weakref.WeakKeyDictionary()
_shapes_lock = threading.Lock()
# Statements built once per engine and entry (its shape checked then), run for each person with their values
# bound: building one costs more than running it. Dropped with the shapes, so a fixed store is checked again.
_statements: weakref.WeakKeyDictionary[Engine, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def purge_entry(
    engine: Engine,
    entry: TableEntry,
    values: list[str],
    batch_size: int = 1000,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Delete, or nullify, the entry's rows whose column holds one of the person's values.

    Each batch commits on its own and then calls on_batch with its row count, so a crash
    loses at most one batch and a rerun finishes the job. Returns the rows affected by this run.
    """
    if entry.action == "nullify" and entry.column not in entry.columns:
        raise TableMisconfigured(
            entry.store, entry.table,
            f"nullify must set {entry.column!r} to NULL too, or the rows go on naming the person",
        )
    dialect, chunks = engine.dialect.name, list(_chunks(values))
    if not chunks:
        return 0
    statement = _prepared(engine, ("purge", entry, batch_size), [entry], lambda: _purge_statement(
        engine, entry, lambda t: holds(t.c[entry.column], bindparam(VALUES, expanding=True), dialect), batch_size))
    return sum(_purged(engine, entry, statement, bound(VALUES, chunk, dialect), batch_size, on_batch)
               for chunk in chunks)


def count_entry(engine: Engine, entry: TableEntry, values: list[str]) -> int:
    """Rows of the entry that still hold one of the values: what verify needs to see at 0."""
    dialect = engine.dialect.name
    count = _prepared(engine, ("count", entry), [entry], lambda: _count(entry, VALUES, dialect))
    with store_errors(engine, entry), engine.connect() as conn:
        return sum(driver.rows(conn, count, bound(VALUES, chunk, dialect))[0][0] for chunk in _chunks(values))


def _count(entry: TableEntry, name: str, dialect: str) -> Select:
    """A count of the entry's rows that hold one of the values bound to `name`."""
    t = entry_table(entry)
    return select(func.count()).select_from(t).where(holds(t.c[entry.column], bindparam(name, expanding=True), dialect))


def count_entries(engine: Engine, wanted: list[tuple[TableEntry, list[str]]]) -> list[int]:
    """count_entry for several entries of one store, in one statement: verify's re-count of a person."""
    if len(wanted) < 2:
        return [count_entry(engine, entry, values) for entry, values in wanted]
    dialect = engine.dialect.name
    chunked = [list(_chunks(values)) for _, values in wanted]
    if not any(chunked):
        return [0] * len(wanted)
    # One scalar subquery per IN list of each entry; built once for each such shape of a person.
    shape = tuple((entry, len(chunks)) for (entry, _), chunks in zip(wanted, chunked, strict=True))
    statement = _prepared(engine, ("counts", shape), [entry for entry, _ in wanted], lambda: select(*(
        _count(entry, f"v{i}_{j}", dialect).scalar_subquery() for i, (entry, n) in enumerate(shape) for j in range(n))))
    params: dict[str, list] = {}
    for i, chunks in enumerate(chunked):
        for j, chunk in enumerate(chunks):
            params.update(bound(f"v{i}_{j}", chunk, dialect))
    try:
        with engine.connect() as conn:
            row = driver.rows(conn, statement, params)[0]
    except sa_exc.SQLAlchemyError:
        # One statement cannot say which entry the store refused: count them one by one, which names it.
        return [count_entry(engine, entry, values) for entry, values in wanted]
    totals, at = [], 0
    for chunks in chunked:
        totals.append(sum(row[at:at + len(chunks)]))
        at += len(chunks)
    return totals


def purge_rows(
    engine: Engine,
    entry: TableEntry,
    where: Callable[[TableClause], ColumnElement[bool]],
    batch_size: int = 1000,
    on_batch: Callable[[int], None] | None = None,
    extra: tuple[str, ...] = (),
) -> int:
    """Apply the entry's action to the rows `where(table)` picks, in committed batches.

    purge_entry matches identities; a retention sweep can pass its own condition, naming the
    columns it uses in `extra`. Batches stop at one that finds fewer rows than it may take: every
    row that matched when it ran is done. A row a concurrent writer adds later is the next run's
    (an erasure's verify step, a retention sweep's next round).
    """
    statement = _purge_statement(engine, entry, where, batch_size, extra)
    return _purged(engine, entry, statement, {}, batch_size, on_batch)


def _purge_statement(engine: Engine, entry: TableEntry, where: Callable[[TableClause], ColumnElement[bool]],
                     batch_size: int, extra: tuple[str, ...] = ()) -> Delete | Update:
    """One batch of purge_rows: the entry's action on at most batch_size of the rows `where(table)` picks."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with store_errors(engine, entry):
        shape = _checked_shape(engine, entry, extra)
    t = entry_table(entry, *shape.key, *extra)
    statement: Delete | Update
    if engine.dialect.name == "mysql":
        # Each statement changes at most batch_size of the rows that match, found through the
        # condition's own index; MariaDB allows no LIMIT in the IN subquery used below anyway.
        condition = _still_named(t, entry, where(t))
        if entry.action == "delete":
            statement = delete(t).where(condition).with_dialect_options(mysql_limit=batch_size)
        else:
            statement = (update(t).where(condition).values(dict.fromkeys(entry.columns, None))
                         .with_dialect_options(mysql_limit=batch_size))
    else:
        picked_from = t.alias("picked")  # a distinct FROM, so the subquery never correlates to the target
        condition = _still_named(picked_from, entry, where(picked_from))
        picked = select(*(picked_from.c[k] for k in shape.key)).where(condition).limit(batch_size)
        key = t.c[shape.key[0]] if len(shape.key) == 1 else tuple_(*(t.c[k] for k in shape.key))
        chosen = key.in_(picked)
        if engine.dialect.name == "postgresql" and len(shape.key) == 1:
            # PostgreSQL joins `key IN (SELECT ... LIMIT n)` by hashing the picked keys and scanning the whole
            # table for them: a person's purge would cost as much as the table is long. The picked keys as one
            # array, looked up in the key's index, cost what the person's rows do.
            chosen = key == any_(func.array(picked.scalar_subquery()))  # id = ANY(ARRAY(SELECT ...))
        if entry.action == "delete":
            statement = delete(t).where(chosen)
        else:
            statement = update(t).where(chosen).values(dict.fromkeys(entry.columns, None))
    return statement


def _purged(engine: Engine, entry: TableEntry, statement: Delete | Update, params: dict, batch_size: int,
            on_batch: Callable[[int], None] | None) -> int:
    total = 0
    with closing(_batches(engine, entry, statement, params, batch_size)) as batches:
        for done in batches:
            total += done
            if on_batch is not None:
                on_batch(done)  # outside the store's error handling: the caller's own errors pass unchanged
    return total


def _still_named(t, entry: TableEntry, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """With nullify, a batch clears every one of the columns, so insisting that one is still set means
    each batch moves on to new rows, whatever the condition."""
    if entry.action != "nullify":
        return condition
    return and_(condition, or_(*(t.c[c].is_not(None) for c in entry.columns)))


def row_key(engine: Engine, entry: TableEntry) -> tuple[str, ...]:
    """The columns that pick out one row of the entry's table (for keyset paging, e.g. an export)."""
    with store_errors(engine, entry):
        key = _checked_shape(engine, entry).key
    if not key:
        raise TableMisconfigured(entry.store, entry.table, f"no primary key to page by on {engine.dialect.name}")
    return key


def _batches(engine: Engine, entry: TableEntry, statement, params: dict, batch_size: int
             ) -> Generator[int, None, None]:
    with store_errors(engine, entry), engine.connect() as conn:
        while True:
            with conn.begin():
                done = driver.rowcount(conn, statement, params)  # most of a worker's work on a store
            if done:
                yield done
            if done < batch_size:  # a short batch took all there was: no empty statement to prove it
                return


def _chunks(values: list[str]) -> Iterator[list[str]]:
    unique = sorted({v for v in values if v})
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start:start + IN_CHUNK]


def _checked_shape(engine: Engine, entry: TableEntry, extra: tuple[str, ...] = ()) -> _Shape:
    shape = _shape(engine, entry)
    missing = [n for n in (entry.column, *entry.columns, *extra) if n not in shape.nullable]
    not_null = [n for n in entry.columns if not shape.nullable.get(n, True)]
    if missing or not_null:
        _drop_shapes(engine)  # someone may fix the store next: look again on the retry
        problem = f"has no column {missing[0]!r}" if missing else f"column {not_null[0]!r} is NOT NULL"
        raise TableMisconfigured(entry.store, entry.table, problem)
    return shape


def _shape(engine: Engine, entry: TableEntry) -> _Shape:
    with _shapes_lock:
        cached = _shapes.get(engine, {}).get(entry.table)
    if cached is not None:
        return cached
    inspector = inspect(engine)
    if not inspector.has_table(entry.table):
        raise TableMisconfigured(entry.store, entry.table, "no such table")
    nullable = {c["name"]: bool(c["nullable"]) for c in inspector.get_columns(entry.table)}
    key = tuple(inspector.get_pk_constraint(entry.table)["constrained_columns"])
    if not key and engine.dialect.name != "mysql":
        address = ROW_ADDRESS.get(engine.dialect.name)
        if address is None:
            raise TableMisconfigured(entry.store, entry.table, f"no primary key to batch by on {engine.dialect.name}")
        key = (address,)
    shape = _Shape(key, nullable)
    with _shapes_lock:
        _shapes.setdefault(engine, {})[entry.table] = shape
    return shape


@contextmanager
def store_errors(engine: Engine, entry: TableEntry) -> Iterator[None]:
    """Turn the driver's errors into ours. The original is dropped (`from None`): SQLAlchemy's text
    carries the statement's parameters, which are the person's identities, and it may carry the host."""
    try:
        yield
    except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.NoSuchTableError) as exc:
        _drop_shapes(engine)
        raise TableMisconfigured(entry.store, entry.table,
                                 f"the store refused the change ({driver_reason(exc)})") from None
    except (sa_exc.DBAPIError, sa_exc.DisconnectionError, sa_exc.TimeoutError) as exc:
        _drop_shapes(engine)  # the table may have changed too: look again on the retry
        raise StoreUnavailable(entry.store, f"cannot reach or use the store ({driver_reason(exc)})") from None


def driver_reason(exc: Exception) -> str:
    """The driver's error class and code, e.g. 'OperationalError SQLITE_CANTOPEN': no text, no values."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    if code is None and orig.args and isinstance(orig.args[0], int):
        code = orig.args[0]  # PyMySQL's error number, e.g. 2003: can't connect (its text names the host)
    return f"{type(orig).__name__} {code}" if code else type(orig).__name__


def _prepared(engine: Engine, key: tuple, entries: list[TableEntry], build: Callable[[], Any]) -> Any:
    """The statement cached under key, else `build()`'s, once the tables of the entries it uses fit them."""
    with _shapes_lock:
        found = _statements.get(engine, {}).get(key)
    if found is not None:
        return found
    for entry in entries:
        with store_errors(engine, entry):
            _checked_shape(engine, entry)
    statement = build()
    with _shapes_lock:
        _statements.setdefault(engine, {})[key] = statement
    return statement


def _drop_shapes(engine: Engine) -> None:
    """Drop the cached table shapes of a store, and the statements built on them, so the next use reads them again."""
    with _shapes_lock:
        _shapes.pop(engine, None)
        _statements.pop(engine, None)
