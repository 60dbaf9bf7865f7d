"""Counting the SQL statements an engine runs: how tests hold a query count flat."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import event


@contextlib.contextmanager
def counted(app) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs inside the block."""
    engine, statements = app.extensions["ownstory_db"]["engine"], []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)
