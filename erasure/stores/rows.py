"""Reading a sql store's rows, in keyset-paged batches: a person's, every column (what the export streams),
and an entry's distinct identity values (what a retention sweep looks up)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Label, column, inspect, literal_column, select, table, text, tuple_
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from erasure.stores.kinds import StoreError
from erasure.stores.purge import ROW_ADDRESS, entry_table, exact, holds, row_key

if TYPE_CHECKING:
    from erasure.stores.sql import TableEntry

BATCH = 1000  # rows per query


def table_rows(engine: Engine, entry: TableEntry, values: list[str], batch_size: int = BATCH
               ) -> Iterator[list[dict]]:
    """The entry's rows for the values, every column, in keyset-paged batches of short transactions."""
    key = row_key(engine, entry)
    names = [c["name"] for c in inspect(engine).get_columns(entry.table)]
    t = table(entry.table, *(column(n) for n in names))
    address = key[0] if len(key) == 1 and key[0] in ROW_ADDRESS.values() and key[0] not in names else None
    keys: list[Label[Any]]
    if address:
        keys = [literal_column(address).label("_ownstory_key")]
    else:
        keys = [t.c[k].label(f"_ownstory_key{i}") for i, k in enumerate(key)]
    for value in sorted(set(values)):
        last: tuple | None = None
        while True:
            stmt = select(*(t.c[n] for n in names), *keys).where(holds(t.c[entry.column], [value], engine.dialect.name))
            if last is not None:
                stmt = stmt.where(_after(address, keys, last))
            stmt = stmt.order_by(*(literal_column(address) if address else t.c[k] for k in key)).limit(batch_size)
            with engine.connect() as conn:
                rows = conn.execute(stmt).all()
            if not rows:
                break
            # zip stops at the last named column: the key columns after it stay out of the row.
            yield [dict(zip(names, row)) for row in rows]  # noqa: B905
            last = tuple(rows[-1][len(names):])
            if len(rows) < batch_size:
                break


def _after(address: str | None, keys, last: tuple):
    if address == "ctid":  # PostgreSQL's row address compares as tid, not as the text the driver returns
        return text("ctid > CAST(:after AS tid)").bindparams(after=str(last[0]))
    if address:
        return literal_column(address) > last[0]
    columns = [k.element for k in keys]
    return columns[0] > last[0] if len(columns) == 1 else tuple_(*columns) > tuple_(*last)


def identity_values(engine: Engine, entry: TableEntry, batch: int) -> Iterator[list]:
    """The entry's distinct identity values, in order, a batch at a time: memory stays bounded.

    On MySQL/MariaDB, DISTINCT and ORDER BY go by the column's collation, which may hold 'Omar' and
    'omar' for one: each batch is paged through the index so, then read again for every spelling.
    """
    t = entry_table(entry)
    col = t.c[entry.column]
    last = None
    while True:
        query = select(col).where(col.is_not(None)).distinct().order_by(col).limit(batch)
        if last is not None:
            query = query.where(col > last)
        try:
            with engine.connect() as conn:
                values = list(conn.scalars(query))
                spelled = values
                if values and engine.dialect.name == "mysql":
                    spelled = sorted(v.decode() for v in conn.scalars(select(exact(col)).where(col.in_(values))
                                                                     .distinct()))
        except sa_exc.NoSuchTableError:
            raise StoreError(entry.store, f"table {entry.table!r}: no such table") from None
        except sa_exc.SQLAlchemyError as exc:
            # The driver's text may hold values (identities): only its class is kept.
            orig = getattr(exc, "orig", None) or exc
            raise StoreError(entry.store, f"table {entry.table!r}: cannot read the store "
                                          f"({type(orig).__name__})") from None
        if not values:
            return
        yield spelled
        if len(values) < batch:
            return
        last = values[-1]
