"""Data migrations move the rows already stored: a database is built at the revision before, rows are written
the old way, and the migration is run up and down (on SQLite, and on PostgreSQL when configured)."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from alembic import command
from sqlalchemy import insert, make_url, select, text
from sqlalchemy.exc import IntegrityError

from app.db import make_engine
from app.migrate import alembic_config, upgrade
from erasure.models import ErasureStep, OptOutRequest
from tests.conftest import BACKENDS, TEST_PG

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(params=BACKENDS)
def empty_database(request, tmp_path):
    """A database with nothing in it: a fresh SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'before.db'}"
        return
    schema = f"migration_{uuid.uuid4().hex[:12]}"
    admin = make_engine(TEST_PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield make_url(TEST_PG).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _request(conn) -> str:
    request_id = str(uuid.uuid4())
    conn.execute(insert(OptOutRequest.__table__).values(
        id=request_id, scope="all", source="person", status="in_progress", show_opted_out=True, requested_at=T0,
        deadline=T0 + dt.timedelta(days=30), secret_hash="0" * 64, subject_commitment="1" * 64,
        identity_kinds={"email": 1}))
    return request_id


def _step(conn, request_id: str, position: int, phase: int, kind: str, target: str, status: str = "pending",
          result: dict | None = None) -> None:
    conn.execute(insert(ErasureStep.__table__).values(
        id=str(uuid.uuid4()), request_id=request_id, position=position, phase=phase, kind=kind, target=target,
        params={}, status=status, attempts=1 if status == "done" else 0, not_before=T0,
        done_at=T0 if status == "done" else None, result=result or {}))


def _steps(conn) -> list[tuple]:
    steps = ErasureStep.__table__.c
    return [tuple(row) for row in conn.execute(
        select(steps.position, steps.phase, steps.kind, steps.target, steps.status, steps.result)
        .order_by(steps.position))]


def test_0008_moves_the_purge_of_ownstorys_own_records_to_the_forget_kind(empty_database):
    upgrade(empty_database, "0007")  # the head before, on the branch that holds the steps
    engine = make_engine(empty_database)
    try:
        with engine.begin() as conn:
            request_id = _request(conn)
            _step(conn, request_id, 1, 1, "revoke", "demo", "done", {"network": "demo", "outcome": "revoked"})
            _step(conn, request_id, 2, 2, "purge", "platform/posts", "done", {"rows": 20, "category": "posts"})
            _step(conn, request_id, 3, 3, "purge", "ownstory", "done", {"grants": 1, "account": 1})
            _step(conn, request_id, 4, 4, "verify", "all stores")
            before = _steps(conn)
        engine.dispose()

        upgrade(empty_database)
        with engine.begin() as conn:
            after = _steps(conn)
        assert [row[2] for row in after] == ["revoke", "purge", "forget", "verify"]
        assert [row[:2] + row[3:] for row in after] == [row[:2] + row[3:] for row in before], \
            "only the kind changes: position, phase, target, status and result stay as they were"
        with engine.begin() as conn:
            _step(conn, request_id, 5, 3, "forget", "ownstory")  # the new kind is allowed...
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _step(conn, request_id, 6, 3, "shred", "ownstory")  # ...and the constraint still holds the rest out
        engine.dispose()

        command.downgrade(alembic_config(empty_database), "0008-1")
        with engine.begin() as conn:
            assert [(row[2], row[3]) for row in _steps(conn)] == [
                ("revoke", "demo"), ("purge", "platform/posts"), ("purge", "ownstory"), ("verify", "all stores"),
                ("purge", "ownstory")]
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _step(conn, request_id, 6, 3, "forget", "ownstory")  # the narrower constraint is back
    finally:
        engine.dispose()


def _open_request(conn, user_id: str | None, scope: str, at: dt.datetime, status: str = "in_progress") -> str:
    request_id = str(uuid.uuid4())
    conn.execute(insert(OptOutRequest.__table__).values(
        id=request_id, user_id=user_id, scope=scope, source="person", status=status, show_opted_out=True,
        requested_at=at, deadline=at + dt.timedelta(days=30), secret_hash="0" * 64, subject_commitment="1" * 64,
        identity_kinds={"email": 1}))
    return request_id


def test_0009_keeps_one_open_opt_out_per_person_and_scope_and_marks_closed_accounts(empty_database):
    from app.models import User

    upgrade(empty_database, "0008")
    upgrade(empty_database, "0009_session_version")  # a branch of its own: the users table as the models write it
    engine = make_engine(empty_database)
    try:
        with engine.begin() as conn:
            leaver, stayer = str(uuid.uuid4()), str(uuid.uuid4())
            for user_id, email in ((leaver, "left-x@ownstory.invalid"), (stayer, "stays@example.org")):
                conn.execute(insert(User.__table__).values(id=user_id, email=email, password_hash="!", role="person",
                                                           created_at=T0))
            # Eight presses before the fix: eight open requests of one person's "everything".
            pressed = [_open_request(conn, leaver, "all", T0 + dt.timedelta(seconds=n)) for n in range(8)]
            network = _open_request(conn, stayer, "demo", T0)
            done = _open_request(conn, stayer, "demo", T0 - dt.timedelta(days=3), status="completed")
        engine.dispose()

        upgrade(empty_database)
        requests = OptOutRequest.__table__.c
        with engine.begin() as conn:
            owners = dict(conn.execute(select(requests.id, requests.user_id)).all())
            closed = dict(conn.execute(select(User.__table__.c.id, User.__table__.c.closed_at)).all())
        assert owners[pressed[0]] == leaver and all(owners[r] is None for r in pressed[1:])
        assert owners[network] == stayer and owners[done] == stayer  # one open, one finished: nothing to detach
        assert closed[leaver] is not None and closed[leaver].replace(tzinfo=dt.UTC) == T0
        assert closed[stayer] is None  # left one network only: the account stays open

        with pytest.raises(IntegrityError), engine.begin() as conn:
            _open_request(conn, stayer, "demo", T0 + dt.timedelta(hours=1), status="received")
        with engine.begin() as conn:
            _open_request(conn, stayer, "all", T0 + dt.timedelta(hours=1))  # another scope
            _open_request(conn, None, "demo", T0)  # no account: the index leaves it alone
        engine.dispose()

        command.downgrade(alembic_config(empty_database), "0008")
        with engine.begin() as conn:
            _open_request(conn, stayer, "demo", T0 + dt.timedelta(hours=2))
    finally:
        engine.dispose()
