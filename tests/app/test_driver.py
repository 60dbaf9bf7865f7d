"""The worker's hot statements run on psycopg's cursor (app/driver.py): same transaction, same values, same errors."""
from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    exc,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from app import driver
from app.db import UTCDateTime, make_engine

TEST_PG = os.environ.get("OWNSTORY_TEST_DATABASE_URL", "").strip()
pytestmark = pytest.mark.skipif(
    not TEST_PG, reason="PostgreSQL through psycopg only, where the driver path runs: set OWNSTORY_TEST_DATABASE_URL")


@pytest.fixture
def table():
    engine = make_engine(TEST_PG, pool_size=1, max_overflow=0)
    t = Table(f"driver_{uuid.uuid4().hex[:10]}", MetaData(), Column("id", String(36), primary_key=True),
              Column("n", Integer, nullable=False), Column("at", UTCDateTime()), Column("doc", JSON))
    t.create(engine)
    try:
        yield engine, t
    finally:
        t.drop(engine)
        engine.dispose()


def bump(t: Table):
    return (update(t).where(t.c.id == bindparam("key")).values(n=t.c.n + 1, at=bindparam("at", type_=UTCDateTime()),
                                                              doc=bindparam("doc", type_=JSON()))
            .returning(t.c.id, t.c.n, t.c.at, t.c.doc))


def test_a_statement_on_the_driver_is_in_the_sessions_transaction_and_rolls_back_with_it(table):
    engine, t = table
    with Session(engine) as session:
        session.execute(insert(t).values(id="a", n=1))
        session.commit()
    with Session(engine) as session:
        assert driver.usable(session)
        assert driver.of(session, bump(t)).rows(session, {"key": "a", "at": None, "doc": None}) != []
        session.rollback()  # e.g. a step's lease was lost: what it wrote must not stay (app.db's read-only commit)
        assert session.scalar(select(t.c.n).where(t.c.id == "a")) == 1
        driver.of(session, bump(t)).rows(session, {"key": "a", "at": None, "doc": None})
        session.commit()
    with Session(engine) as session:
        assert session.scalar(select(t.c.n).where(t.c.id == "a")) == 2


def test_values_go_in_and_come_back_as_through_sqlalchemy(table):
    engine, t = table
    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2026, 12, 7, 3, 4, 5, tzinfo=paris)
    given = {"at": at, "doc": {"store": "platform", "rows": [1, 2]}}
    with Session(engine) as session:
        session.execute(insert(t), [{"id": "a", "n": 1}, {"id": "b", "n": 1}])
        through_driver = driver.of(session, bump(t)).mappings(session, {"key": "a", **given})
        through_sqlalchemy = [dict(r) for r in session.execute(bump(t), {"key": "b", **given}).mappings()]
        session.commit()
    assert through_driver == [{**through_sqlalchemy[0], "id": "a"}]
    assert through_driver[0]["at"] == at and through_driver[0]["at"].tzinfo == dt.UTC
    assert through_driver[0]["doc"] == {"store": "platform", "rows": [1, 2]}


def test_a_parameter_left_out_is_refused_before_anything_is_sent(table):
    engine, t = table
    with Session(engine) as session, pytest.raises(exc.ArgumentError, match="'key'"):
        driver.of(session, bump(t)).rows(session, {"at": None, "doc": None})


def test_a_statement_the_database_refuses_raises_sqlalchemys_error_and_the_session_goes_on(table):
    engine, t = table
    with Session(engine) as session:
        session.execute(insert(t).values(id="a", n=1))
        session.commit()
        with pytest.raises(exc.IntegrityError) as refused:
            driver.of(session, update(t).where(t.c.id != bindparam("key")).values(n=None)).rowcount(
                session, {"key": "a-sealed-token"})
        assert "a-sealed-token" not in str(refused.value)  # the parameters are hidden, as the engine hides them
        session.rollback()
        assert session.scalar(select(t.c.n)) == 1


def test_a_connection_cut_under_a_statement_is_replaced_for_the_next_session(table):
    engine, t = table
    with Session(engine) as session:
        pid = session.scalar(text("SELECT pg_backend_pid()"))
        admin = make_engine(TEST_PG)
        with admin.connect() as conn:
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()
        with pytest.raises(exc.DBAPIError) as raised:
            driver.of(session, update(t).values(n=2)).rowcount(session, {})
        assert raised.value.connection_invalidated
    with Session(engine) as session:
        assert session.scalar(text("SELECT pg_backend_pid()")) != pid


def test_whoever_listens_for_statements_sees_those_on_the_driver(table):
    engine, t = table
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: seen.append(statement))
    with Session(engine) as session:
        session.execute(insert(t).values(id="a", n=1))
        driver.of(session, bump(t)).rows(session, {"key": "a", "at": None, "doc": None})
        session.commit()
    assert [s.split()[0] for s in seen] == ["INSERT", "UPDATE"]


def test_an_expanding_in_is_written_out_for_each_calls_values(table):
    engine, t = table
    counted = select(func.count()).select_from(t).where(t.c.id.in_(bindparam("ids", expanding=True)))
    with Session(engine) as session:
        session.execute(insert(t), [{"id": key, "n": 1} for key in "abcd"])
        assert [driver.of(session, counted).rows(session, {"ids": ids})[0][0]
                for ids in (["a"], ["a", "c", "z"], [])] == [1, 2, 0]
