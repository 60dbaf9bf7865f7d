"""Core statements run straight on psycopg's cursor: the worker's hottest, on PostgreSQL.

A worker claims, finishes and holds back steps several times per opt-out, and purges and counts a person's rows
in each SQL store. For each of those statements, SQLAlchemy's execution of a statement it has cached already
(cache key, execution context, result metadata for RETURNING) cost the worker more CPU than psycopg's own work
did, and its exec_driver_sql keeps the execution context. Compiled once here, with SQLAlchemy's own processing of
each parameter and of each column returned, they run on the session's or connection's DBAPI connection, in its
transaction, with the cursor events SQLAlchemy would send, and fail with SQLAlchemy's errors.

PostgreSQL through psycopg only (`usable`). rowcount, rows and mappings run a statement there on the driver, and
elsewhere (SQLite, MySQL) through SQLAlchemy, with the same answer.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

Bind = Session | Connection  # a session runs the statement in its transaction; a connection, in its own


def usable(bind: Bind) -> bool:
    dialect = _dialect(bind)
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def _dialect(bind: Bind) -> Dialect:
    return bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect


class DriverStatement:
    """One Core statement, compiled for one dialect, with its parameters' and returned columns' processing."""

    def __init__(self, statement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.escaped_bind_names:
            raise ValueError("only statements with plain parameter names run on the driver")
        self.sql = compiled.string
        # An expanding IN (a store's `col IN :values`) is written out for each call's values, by SQLAlchemy. As an
        # array parameter (col = ANY(:values)) it would need no such step, but PostgreSQL's generic plan for an
        # array of unknown length took a purge from an index scan to a scan of the whole table.
        self._expanding = compiled if "POSTCOMPILE" in compiled.string else None
        # (name in the SQL, value when the caller gives none, its processing); a required parameter has no value
        self._binds = tuple((name, bind.required, bind.effective_value,
                             bind.type.dialect_impl(dialect).bind_processor(dialect))
                            for name, bind in compiled.binds.items())
        self._statement, self._dialect = statement, dialect

    def _parameters(self, given: dict[str, Any]) -> dict[str, Any]:
        parameters = {}
        for name, required, default, process in self._binds:
            if name in given:
                value = given[name]
            elif required:
                raise sa_exc.ArgumentError(f"a value is required for the parameter {name!r}")
            else:
                value = default
            parameters[name] = value if process is None or value is None else process(value)
        return parameters

    def _expanded(self, given: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        assert self._expanding is not None
        state = self._expanding.construct_expanded_state(given)
        processors = state.processors
        return state.statement, {name: processors[name](value) if name in processors and value is not None else value
                                 for name, value in state.parameters.items()}

    def execute(self, bind: Bind, given: dict[str, Any]):
        """The psycopg cursor, once the statement ran; its rows are unprocessed (see rows)."""
        conn = _connection(bind)
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None  # a connection in use is never closed under its Connection
        cursor = dbapi_conn.cursor()
        sql, parameters = self._expanded(given) if self._expanding is not None else (self.sql, self._parameters(given))
        # The cursor events, for whoever listens: app.db's own (a transaction that wrote must roll back, not
        # commit), tests that count statements. There is no execution context to give them.
        before, after = conn.dispatch.before_cursor_execute, conn.dispatch.after_cursor_execute
        if before:
            before(conn, cursor, sql, parameters, None, False)
        try:
            cursor.execute(sql, parameters)
            if after:
                after(conn, cursor, sql, parameters, None, False)
        except Exception as exc:
            if not isinstance(exc, conn.dialect.loaded_dbapi.Error):
                raise
            cut = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
            if cut:
                conn.invalidate(exc)  # as SQLAlchemy does: the pool replaces the connection
            raise sa_exc.DBAPIError.instance(sql, parameters, exc, conn.dialect.loaded_dbapi.Error,
                                             hide_parameters=conn.engine.hide_parameters,  # no token in a log
                                             connection_invalidated=cut) from exc
        return cursor

    def rowcount(self, bind: Bind, given: dict[str, Any]) -> int:
        return self.execute(bind, given).rowcount

    @functools.cached_property
    def _returned(self) -> tuple[tuple[str, ...], tuple]:
        """The keys of the columns returned, and their processing: read only for a statement that returns rows.
        (A statement's exported columns are memoized on it, and a statement derived from it afterwards, such as
        an UPDATE given RETURNING, would keep them: an UPDATE without RETURNING is never asked.)"""
        statement, dialect = self._statement, self._dialect
        returned = statement.selected_columns if isinstance(statement, Select) else statement.exported_columns
        return (tuple(str(column.key) for column in returned),
                tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returned))

    def rows(self, bind: Bind, given: dict[str, Any]) -> list[tuple]:
        """Each row returned, each value processed as SQLAlchemy would."""
        fetched = self.execute(bind, given).fetchall()
        results = self._returned[1]
        return [tuple(value if process is None or value is None else process(value)
                      for value, process in zip(row, results, strict=True)) for row in fetched]

    def mappings(self, bind: Bind, given: dict[str, Any]) -> list[dict[str, Any]]:
        """Each row returned as {column key: value}, for a statement whose columns have names of their own."""
        keys = self._returned[0]
        return [dict(zip(keys, row, strict=True)) for row in self.rows(bind, given)]


@functools.lru_cache(maxsize=512)  # bounded: a store's statements are built again after it changes (purge.py)
def compiled(statement, dialect: Dialect) -> DriverStatement:
    """The statement compiled for the driver once: the callers build each statement once and run that object."""
    return DriverStatement(statement, dialect)


def of(bind: Bind, statement) -> DriverStatement:
    return compiled(statement, _dialect(bind))


def rowcount(bind: Bind, statement, parameters: dict[str, Any]) -> int:
    if usable(bind):
        return of(bind, statement).rowcount(bind, parameters)
    return _connection(bind).execute(statement, parameters).rowcount


def rows(bind: Bind, statement, parameters: dict[str, Any]) -> Sequence[Sequence[Any]]:
    if usable(bind):
        return of(bind, statement).rows(bind, parameters)
    return _connection(bind).execute(statement, parameters).all()


def mappings(bind: Bind, statement, parameters: dict[str, Any]) -> Sequence[Mapping[Any, Any]]:
    if usable(bind):
        return of(bind, statement).mappings(bind, parameters)
    return _connection(bind).execute(statement, parameters).mappings().all()


def _connection(bind: Bind) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind
