"""Core statements run straight on psycopg's cursor, in the session's transaction: the worker's hottest.

A worker claims, finishes and holds back steps several times per opt-out. For each of those statements,
SQLAlchemy's execution of a statement it has cached already (cache key, execution context, events, result
metadata for RETURNING) cost the worker more CPU than psycopg's own work did. Compiled once here, with
SQLAlchemy's own processing of each parameter and of each column returned, they run on the session's
connection, in its transaction, as SQLAlchemy would run them, and fail with SQLAlchemy's errors.

PostgreSQL through psycopg only (`usable`); elsewhere the callers run the statement through SQLAlchemy.
"""
from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from app.db import WROTE


def usable(session: Session) -> bool:
    dialect = session.get_bind().dialect
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


class DriverStatement:
    """One Core statement, compiled for one dialect, with its parameters' and returned columns' processing."""

    def __init__(self, statement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.escaped_bind_names or "POSTCOMPILE" in compiled.string:
            raise ValueError("only statements with plain parameter names and no expanding IN run on the driver")
        self.sql = compiled.string
        # (name in the SQL, value when the caller gives none, its processing); a required parameter has no value
        self._binds = tuple((name, bind.required, bind.effective_value,
                             bind.type.dialect_impl(dialect).bind_processor(dialect))
                            for name, bind in compiled.binds.items())
        self.writes = not isinstance(statement, Select)
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

    def execute(self, session: Session, given: dict[str, Any]):
        """The psycopg cursor, once the statement ran; its rows are unprocessed (see rows)."""
        conn = session.connection()
        if self.writes:
            conn.info[WROTE] = True  # what app.db's before_cursor_execute would have noted: rollback must roll back
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None  # a connection in use is never closed under its Connection
        cursor = dbapi_conn.cursor()
        parameters = self._parameters(given)
        try:
            cursor.execute(self.sql, parameters)
        except Exception as exc:
            if not isinstance(exc, conn.dialect.loaded_dbapi.Error):
                raise
            cut = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
            if cut:
                conn.invalidate(exc)  # as SQLAlchemy does: the pool replaces the connection
            raise sa_exc.DBAPIError.instance(self.sql, parameters, exc, conn.dialect.loaded_dbapi.Error,
                                             hide_parameters=conn.engine.hide_parameters,  # no token in a log
                                             connection_invalidated=cut) from exc
        return cursor

    def rowcount(self, session: Session, given: dict[str, Any]) -> int:
        return self.execute(session, given).rowcount

    @functools.cached_property
    def _returned(self) -> tuple[tuple[str, ...], tuple]:
        """The keys of the columns returned, and their processing: read only for a statement that returns rows.
        (A statement's exported columns are memoized on it, and a statement derived from it afterwards, such as
        an UPDATE given RETURNING, would keep them: an UPDATE without RETURNING is never asked.)"""
        statement, dialect = self._statement, self._dialect
        returned = statement.selected_columns if isinstance(statement, Select) else statement.exported_columns
        return (tuple(str(column.key) for column in returned),
                tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returned))

    def rows(self, session: Session, given: dict[str, Any]) -> list[tuple]:
        """Each row returned, each value processed as SQLAlchemy would."""
        fetched = self.execute(session, given).fetchall()
        results = self._returned[1]
        return [tuple(value if process is None or value is None else process(value)
                      for value, process in zip(row, results, strict=True)) for row in fetched]

    def mappings(self, session: Session, given: dict[str, Any]) -> list[dict[str, Any]]:
        """Each row returned as {column key: value}, for a statement whose columns have names of their own."""
        keys = self._returned[0]
        return [dict(zip(keys, row, strict=True)) for row in self.rows(session, given)]


@functools.cache
def compiled(statement, dialect: Dialect) -> DriverStatement:
    """The statement compiled for the driver once (statements built once, by functools.cache, are the same object)."""
    return DriverStatement(statement, dialect)


def of(session: Session, statement) -> DriverStatement:
    return compiled(statement, session.get_bind().dialect)
