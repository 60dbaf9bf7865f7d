"""Reading a person's rows from a store, every column, in keyset-paged batches: what the export streams."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Label, column, inspect, literal_column, select, table, text, tuple_
from sqlalchemy.engine import Engine

from erasure.stores.datamap import TableEntry
from erasure.stores.purge import ROW_ADDRESS, row_key

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
            stmt = select(*(t.c[n] for n in names), *keys).where(t.c[entry.column] == value)
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
