"""Retention sweeps: old rows, expired grants and re-ingested data go on schedule; one sweep at a time."""
from __future__ import annotations

import datetime as dt
import threading
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, event, func, insert, select

from app.db import utcnow
from app.settings import ConfigError
from consent.models import Grant
from demo.platform import PLATFORM_TABLES, posts, row_counts
from erasure.context import context_from_app
from erasure.engine.scheduler import _sweep
from erasure.engine.worker import Worker
from erasure.models import OptOutRequest, RetentionSweep
from erasure.retention import sweeps as retention
from erasure.stores.datamap import load_datamap
from tests.conftest import db_session
from tests.erasure.helpers_optout import joined_person, others_checksum, platform_rows, submit_optout

RETAINED = 'column = "author_id"\nidentity = "account"\nnetwork = "demo"\naction = "delete"\n'
# The seeded posts were written between 5 and 11 January 2026: this cutoff splits them.
CUTOFF = dt.datetime(2026, 1, 8, 9, 0, tzinfo=dt.UTC)


def with_retention(config_files, days: int = 30, column: str = "created_at"):
    """The shipped data map, with posts kept for `days` days after their `column`."""
    path = config_files["datamap"]
    text = path.read_text()
    assert text.count(RETAINED) == 1
    retained = path.with_name("datamap-retention.toml")
    retained.write_text(text.replace(RETAINED, RETAINED + f'retention_days = {days}\ntimestamp_column = "{column}"\n'))
    return retained


def run_sweep(app, now=None, **kwargs) -> retention.SweepResult:
    with db_session(app) as db:
        return retention.sweep(db, context_from_app(app), now or utcnow(), **kwargs)


def counts_of(result: retention.SweepResult, category: str) -> dict:
    return next(e for e in result.entries if e["category"] == category)


def posts_before(platform_url: str, at: dt.datetime) -> int:
    engine = create_engine(platform_url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(posts).where(posts.c.created_at < at))
    engine.dispose()
    return n


def ingest(platform_url: str, account: str, handle: str, email: str | None = None, at: dt.datetime | None = None):
    """The platform picks the person up again: a profile, posts, an endorsement either way, a score."""
    at = at or utcnow()
    engine = create_engine(platform_url)
    with engine.begin() as conn:
        conn.execute(insert(PLATFORM_TABLES["profiles"]), {"account_id": account, "handle": handle,
                                                           "display_name": handle.title(), "bio": ""})
        conn.execute(insert(posts), [{"author_id": account, "body": f"again #{n}", "created_at": at}
                                     for n in range(3)])
        conn.execute(insert(PLATFORM_TABLES["endorsements"]), [
            {"giver_id": account, "receiver_id": "2001", "topic": "music"},
            {"giver_id": "2002", "receiver_id": account, "topic": "music"}])
        conn.execute(insert(PLATFORM_TABLES["scores"]), {"handle": handle, "score": 50.0, "computed_at": at})
        if email:
            conn.execute(insert(PLATFORM_TABLES["mailing_list"]), {"email": email, "subscribed_at": at})
    engine.dispose()


def held(platform_url: str, account: str, handle: str) -> int:
    return sum(platform_rows(platform_url, table, column, value) for table, column, value in (
        ("profiles", "account_id", account), ("posts", "author_id", account), ("endorsements", "giver_id", account),
        ("endorsements", "receiver_id", account), ("scores", "handle", handle)))


def leave(app, client, csrf_post, worker, scope: str = "all") -> str:
    status_path = submit_optout(client, csrf_post, scope)
    worker.drain()
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
    with db_session(app) as db:
        assert db.get(OptOutRequest, request_id).status == "completed"
    return request_id


def add_grant(app, user_id: str, account: str, handle: str, expires_at: dt.datetime | None,
              refresh: bool = False) -> None:
    vault = context_from_app(app).vault
    with db_session(app) as db:
        db.add(Grant(user_id=user_id, network="demo", account_id=account, handle=handle, scopes="profile",
                     access_token=vault.seal("at-" + account), refresh_token=vault.seal("rt") if refresh else None,
                     expires_at=expires_at))
        db.commit()


# --- the data map --------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, problem", [
    ("retention_days = 30\n", "retention_days needs the column"),
    ('timestamp_column = "created_at"\n', "only goes with retention_days"),
    ('retention_days = 30\ntimestamp_column = "created at"\n', "not a plain table or column name"),
])
def test_the_data_map_needs_a_timestamp_column_with_retention(config_files, extra, problem):
    path = config_files["datamap"]
    path.write_text(path.read_text().replace(RETAINED, RETAINED + extra))
    with pytest.raises(ConfigError) as raised:
        load_datamap(path)
    assert raised.value.field == "stores.platform.tables[1].timestamp_column"
    assert problem in raised.value.problem


def test_the_shipped_data_map_loads_with_retention(config_files):
    entry = next(e for e in load_datamap(with_retention(config_files, 365)).entries if e.table == "posts")
    assert (entry.retention_days, entry.timestamp_column) == (365, "created_at")


# --- 1. past retention ---------------------------------------------------------------------------

def test_rows_past_retention_go_and_newer_rows_stay(make_app, config_files, platform_url):
    app = make_app(datamap=with_retention(config_files, days=30))
    now = CUTOFF + dt.timedelta(days=30)
    old = posts_before(platform_url, CUTOFF)
    before = row_counts(platform_url)
    assert 0 < old < before["posts"]
    ingest(platform_url, "2003", "sam-again", at=now)  # new today: it stays

    result = run_sweep(app, now)

    assert result.ran and result.status == "done"
    assert counts_of(result, "posts")["past_retention"] == old
    assert result.rows == old  # nothing else was due
    after = row_counts(platform_url)
    assert after["posts"] == before["posts"] + 3 - old
    assert posts_before(platform_url, CUTOFF) == 0
    assert {k: v for k, v in after.items() if k != "posts"} == {
        k: v + (1 if k in ("profiles", "scores") else 2 if k == "endorsements" else 0)
        for k, v in before.items() if k != "posts"}

    again = run_sweep(app, now)  # idempotent: nothing left to purge
    assert again.ran and again.rows == 0 and row_counts(platform_url) == after


def test_a_retention_column_the_store_lacks_is_reported_and_the_rest_runs(make_app, config_files, platform_url):
    app = make_app(datamap=with_retention(config_files, column="written_at"))
    result = run_sweep(app)
    assert result.status == "partial"
    assert result.errors == [{"store": "platform", "table": "posts", "column": "author_id",
                              "reason": "past_retention", "error": "store 'platform': table 'posts': "
                                                                   "has no column 'written_at'"}]
    assert row_counts(platform_url)["posts"] > 0


# --- 2. expired grants ---------------------------------------------------------------------------

def test_the_data_of_an_expired_grant_goes(app, make_person, platform_url, sessions):
    now = utcnow()
    expired, fresh, refreshable = make_person(), make_person(), make_person()
    add_grant(app, expired.id, "1002", "omar", now - dt.timedelta(days=3))
    add_grant(app, fresh.id, "1003", "mei", now - dt.timedelta(hours=2))  # within the day's grace
    add_grant(app, refreshable.id, "1004", "tomas", now - dt.timedelta(days=30), refresh=True)
    others = others_checksum(platform_url, "1002")
    assert held(platform_url, "1002", "omar") > 0

    result = run_sweep(app, now)

    assert result.status == "done"
    assert held(platform_url, "1002", "omar") == 0
    assert others_checksum(platform_url, "1002") == others
    assert held(platform_url, "1003", "mei") > 0 and held(platform_url, "1004", "tomas") > 0
    assert counts_of(result, "posts")["expired_grant"] == 20
    assert counts_of(result, "influence scores")["expired_grant"] == 1
    assert platform_rows(platform_url, "mailing_list", "email", "omar@demo.example") == 1  # not the grant's
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Grant)) == 3  # the person can connect again


def test_a_handle_an_expired_grant_shares_with_a_live_one_stays(app, make_person, platform_url):
    now = utcnow()
    add_grant(app, make_person().id, "1002", "omar", now - dt.timedelta(days=3))
    add_grant(app, make_person().id, "7002", "omar", None)  # the handle passed to someone else
    run_sweep(app, now)
    assert platform_rows(platform_url, "posts", "author_id", "1002") == 0
    assert platform_rows(platform_url, "scores", "handle", "omar") == 1


def test_the_data_of_a_revoked_grant_goes_when_it_comes_back(app, client, make_person, login, csrf_post, worker,
                                                             platform_url):
    """Leaving one network revokes its grant; what the platform ingests for it afterwards is swept."""
    person = joined_person(client, make_person, login, csrf_post, account="1004")
    leave(app, client, csrf_post, worker, scope="demo")
    assert held(platform_url, "1004", "tomas") == 0
    ingest(platform_url, "1004", "tomas", email=person.email)

    result = run_sweep(app)

    assert held(platform_url, "1004", "tomas") == 0
    assert counts_of(result, "posts")["reappeared"] == 3
    # Only the network was left: the person is still here, and so is their mailing-list row.
    assert platform_rows(platform_url, "mailing_list", "email", person.email) == 1


# --- 3. data that reappears after an opt-out -----------------------------------------------------

def test_data_ingested_again_after_an_opt_out_is_swept_and_nobody_elses(app, client, make_person, login, csrf_post,
                                                                        worker, platform_url):
    person = joined_person(client, make_person, login, csrf_post, account="1002")
    leave(app, client, csrf_post, worker)
    ingest(platform_url, "1002", "omar", email=person.email.upper())
    ingest(platform_url, "9009", "stranger", email="stranger@example.org")  # someone who never left
    others = others_checksum(platform_url, "1002")  # what they received is theirs no more: counted as NULL
    assert held(platform_url, "1002", "omar") == 7

    result = run_sweep(app)

    assert result.status == "done"
    assert held(platform_url, "1002", "omar") == 0
    assert platform_rows(platform_url, "mailing_list", "email", person.email.upper()) == 0
    assert held(platform_url, "9009", "stranger") == 7
    assert platform_rows(platform_url, "mailing_list", "email", "stranger@example.org") == 1
    reappeared = {e["category"]: e["reappeared"] for e in result.entries}
    assert reappeared == {"profile": 1, "posts": 3, "endorsements": 1, "endorsements received": 1,
                          "influence scores": 1, "mailing list": 1}
    assert result.rows == 8
    assert others_checksum(platform_url, "1002") == others


def test_an_opt_out_still_under_way_is_left_to_its_own_steps(app, client, make_person, login, csrf_post,
                                                             platform_url):
    joined_person(client, make_person, login, csrf_post, account="1003")
    submit_optout(client, csrf_post, "all")  # the worker has not run: its purge and receipt are ahead
    result = run_sweep(app)
    assert result.rows == 0
    assert platform_rows(platform_url, "posts", "author_id", "1003") == 20


def test_a_person_who_came_back_is_not_swept(app, client, make_person, login, csrf_post, worker, platform_url):
    person = joined_person(client, make_person, login, csrf_post, account="1005")
    leave(app, client, csrf_post, worker)
    response = csrf_post(client, "/signup", {"email": person.email, "password": person.password})
    assert response.status_code == 302
    ingest(platform_url, "1005", "ada", email=person.email)  # subscribed again, with the same address

    run_sweep(app)

    assert platform_rows(platform_url, "mailing_list", "email", person.email) == 1
    assert platform_rows(platform_url, "posts", "author_id", "1005") == 0  # the account is still suppressed


# --- one sweep at a time -------------------------------------------------------------------------

def test_two_sweeps_at_once_purge_each_row_once(app, client, make_person, login, csrf_post, worker, platform_url,
                                                sessions):
    joined_person(client, make_person, login, csrf_post, account="1002")
    leave(app, client, csrf_post, worker)
    ingest(platform_url, "1002", "omar")
    start = threading.Barrier(2)
    results: list = []
    errors: list = []

    def one() -> None:
        try:
            start.wait(timeout=10)
            results.append(run_sweep(app, batch_size=1))
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    ran = [r for r in results if r.ran]
    assert ran and sum(r.rows for r in ran) == 7  # every row counted once, whichever sweep took it
    assert held(platform_url, "1002", "omar") == 0
    with sessions() as db:
        sweeps = db.scalars(select(RetentionSweep)).all()
        assert sorted(s.status for s in sweeps) == ["done"] * len(ran)
        assert sum(s.rows for s in sweeps) == 7


def test_two_workers_ticking_together_run_one_sweep(app, make_person, platform_url, sessions):
    add_grant(app, make_person().id, "1001", "liz", utcnow() - dt.timedelta(days=2))
    before = held(platform_url, "1001", "liz")
    workers = [Worker(app, threads=1), Worker(app, threads=1)]
    start = threading.Barrier(2)

    def tick(w: Worker) -> None:
        start.wait(timeout=10)
        _sweep(w)

    threads = [threading.Thread(target=tick, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for w in workers:
        w.close()
    with sessions() as db:
        sweeps = db.scalars(select(RetentionSweep)).all()
    assert len(sweeps) == 1 and sweeps[0].status == "done"
    assert sweeps[0].owner in {w.owner for w in workers}
    assert sweeps[0].rows == before > 0
    assert held(platform_url, "1001", "liz") == 0


def test_a_running_sweep_makes_others_skip_until_its_lease_runs_out(app, sessions):
    now = utcnow()
    with sessions() as db:
        db.add(RetentionSweep(owner="elsewhere:1:abc", status="running", started_at=now,
                              lease_expires_at=now + dt.timedelta(minutes=5)))
        db.commit()
    assert run_sweep(app, now).ran is False
    later = run_sweep(app, now + dt.timedelta(minutes=6))  # the other worker died: its lease ran out
    assert later.ran and later.status == "done"
    with sessions() as db:
        statuses = {s.owner: s.status for s in db.scalars(select(RetentionSweep))}
    assert statuses == {"elsewhere:1:abc": "abandoned", "direct": "done"}


def test_a_sweep_is_not_due_again_within_its_interval(app):
    now = utcnow()
    every = dt.timedelta(seconds=30)
    assert run_sweep(app, now, every=every).ran
    assert not run_sweep(app, now + dt.timedelta(seconds=10), every=every).ran
    assert run_sweep(app, now + dt.timedelta(seconds=31), every=every).ran


def test_a_sweep_starts_while_others_write_between_its_look_and_its_start(app, database_url):
    """The cheap look (was one run recently?) reads without the lock. If someone writes right after it, the
    start must still go through: on SQLite, a look left open cannot become a writer ("database is locked")."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's read transactions; PostgreSQL serializes the start with an advisory lock")
    engine = app.extensions["ownstory_db"]["engine"]
    other = create_engine(database_url)
    written = []

    def someone_writes(_conn, _cursor, statement, *_args) -> None:
        if "max(retention_sweeps.started_at)" in statement and not written:
            with other.begin() as conn:  # another request saves something, then and there
                conn.exec_driver_sql("UPDATE users SET last_login_at = last_login_at")
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS someone_else_wrote (x INTEGER)")
            written.append(1)

    event.listen(engine, "after_cursor_execute", someone_writes)
    try:
        result = run_sweep(app, utcnow(), every=dt.timedelta(seconds=30))
    finally:
        event.remove(engine, "after_cursor_execute", someone_writes)
        other.dispose()
    assert written and result.ran and result.status == "done"


# --- what operators see --------------------------------------------------------------------------

def test_operators_see_each_sweep_with_its_counts(app, client, make_person, api_token, platform_url):
    add_grant(app, make_person().id, "1002", "omar", utcnow() - dt.timedelta(days=3))
    first = run_sweep(app, utcnow() - dt.timedelta(minutes=1))
    run_sweep(app)
    headers = {"Authorization": f"Bearer {api_token('operator')}"}

    answer = client.get("/api/v1/sweeps", headers=headers)

    assert answer.status_code == 200, answer.get_data(as_text=True)
    items = answer.json["items"]
    assert len(items) == 2 and items[1]["id"] == first.sweep_id  # newest first
    assert items[1]["status"] == "done" and items[1]["rows"] == first.rows > 0
    posts_entry = next(e for e in items[1]["entries"] if e["category"] == "posts")
    assert posts_entry == {"store": "platform", "table": "posts", "column": "author_id", "category": "posts",
                           "past_retention": 0, "expired_grant": 20, "reappeared": 0, "rows": 20}
    assert items[0]["rows"] == 0
    assert set(items[0]) == {"id", "status", "worker", "started_at", "finished_at", "rows", "entries", "errors"}
    assert "omar" not in answer.get_data(as_text=True)
    assert len(client.get("/api/v1/sweeps?limit=1", headers=headers).json["items"]) == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "status=done"])
def test_bad_sweep_queries_are_refused(client, api_token, query):
    answer = client.get(f"/api/v1/sweeps?{query}", headers={"Authorization": f"Bearer {api_token('operator')}"})
    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "invalid"


def test_the_sweep_listing_is_for_operators(client, api_token):
    for role in ("service", "auditor"):
        answer = client.get("/api/v1/sweeps", headers={"Authorization": f"Bearer {api_token(role)}"})
        assert answer.status_code == 403
    assert client.get("/api/v1/sweeps").status_code == 401


def test_empty_sweeps_are_kept_a_week_and_the_others_for_good(app, make_person, sessions):
    now = utcnow()
    add_grant(app, make_person().id, "1002", "omar", now - dt.timedelta(days=30))
    purged = run_sweep(app, now - dt.timedelta(days=20))
    empty_old = run_sweep(app, now - dt.timedelta(days=10))
    empty_recent = run_sweep(app, now - dt.timedelta(days=2))
    run_sweep(app, now)
    with sessions() as db:
        kept = set(db.scalars(select(RetentionSweep.id)))
    assert purged.rows > 0 and empty_old.rows == empty_recent.rows == 0
    assert purged.sweep_id in kept and empty_recent.sweep_id in kept and empty_old.sweep_id not in kept
    assert len(kept) == 3
