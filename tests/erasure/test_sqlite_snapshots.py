"""On SQLite a transaction that has read, then writes, fails at once ("database is locked", whatever the busy
timeout) if another process committed in between. Every page, API call and worker step that reads what it
then writes takes the write lock first (`app.db.writing`, `write_lock`): with another process committing after
each of their reads, a person still joins and leaves, and the worker still finishes every request."""
from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from erasure.engine.worker import Worker
from erasure.models import ErasureStep, OptOutRequest
from tests.conftest import db_session
from tests.consent.helpers_connect import connect_through_demo
from tests.erasure.engine.helpers_processes import make_crowd, submit_all
from tests.erasure.forget.helpers_forget import ask_for_link, leave, mailed_link
from tests.erasure.helpers_optout import check_consent, submit_optout
from tests.helpers_sqlite import a_writer_commits_after_every_read


def test_a_person_joins_and_leaves_through_the_pages(app, client, make_person, login, csrf_post, api_token, worker,
                                                     demo_network):
    person = make_person()
    token = api_token("service")  # made before: the test's own setup is not what is tried here
    with a_writer_commits_after_every_read(app) as interposed:
        login(client, person)
        assert connect_through_demo(client, csrf_post, "1002").status_code in (302, 303)
        assert csrf_post(client, "/consents", {"consent:demo:scoring": "on"}).status_code in (302, 303)
        assert check_consent(app, lambda _role: token, "1002") == "granted"
        status_path = submit_optout(client, csrf_post, "all", reason="changed_without_notice")
        worker.drain()
        page = client.get(status_path).get_data(as_text=True)
    assert interposed
    assert "Done." in page
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
    with db_session(app) as db:
        assert db.get(OptOutRequest, request_id).status == "completed"
    assert check_consent(app, lambda _role: token, "1002") == "opted_out"


def test_a_worker_finishes_every_request(app, demo_network, platform_url):
    crowd = make_crowd(app, demo_network.app, platform_url, 3)
    request_ids = submit_all(app, crowd)
    worker = Worker(app, threads=1)  # one thread: no other of its own holds the lock when the commit comes
    try:
        with a_writer_commits_after_every_read(app) as interposed:
            worker.drain()
    finally:
        worker.close()
    assert interposed
    with db_session(app) as db:
        assert dict(db.execute(select(OptOutRequest.id, OptOutRequest.status)).all()) == {
            request_id: "completed" for request_id in request_ids}
        assert set(db.scalars(select(ErasureStep.status))) == {"done"}


def test_someone_without_an_account_leaves_with_an_email_link_and_an_operator_retries(
        app, client, csrf_post, worker, operator_headers):
    with a_writer_commits_after_every_read(app) as interposed:
        sent = ask_for_link(client, csrf_post, "otto@elsewhere.example")
        assert sent.status_code == 200
        path = mailed_link(app, "otto@elsewhere.example")
        assert csrf_post(client, path).status_code == 303
        status_path = leave(client, csrf_post)
        request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
        retried = client.post(f"/api/v1/optouts/{request_id}/retry", headers=operator_headers)
        assert retried.status_code < 500, retried.get_data(as_text=True)
        worker.drain()
    assert interposed
    with db_session(app) as db:
        assert db.get(OptOutRequest, request_id).status == "completed"
