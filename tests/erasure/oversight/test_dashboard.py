"""The operator dashboard: who may see it, the queue by urgency with time left, a request's steps and
its audited retry, network health and the chart; never personal data, and a bounded number of queries."""
from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import select, update

from app import audit
from app.db import make_engine, utcnow
from app.models import AuditEvent
from erasure.engine import slots as shared_slots
from erasure.models import ErasureStep, OptOutRequest
from tests.conftest import PLATFORM_STORE, csrf_token_from, takes_at_once
from tests.erasure.oversight.helpers_seed import Secrets, bulk_requests, person_leaves, seed_every_state
from tests.helpers_statements import counted

ROW = re.compile(r'<tr class="(\w+)">\s*<th scope="row"><a href="/operator/requests/([0-9a-f-]{36})"')
NEXT = re.compile(r'<a href="([^"]+)" rel="next">')


def operator_pages(request_id: str) -> list[tuple[str, str]]:
    return [("GET", "/operator"), ("GET", "/operator?status=needs_attention&overdue=no&network=demo"),
            ("GET", "/operator/health"), ("GET", f"/operator/requests/{request_id}"),
            ("POST", f"/operator/requests/{request_id}/retry")]


def post_form(client, path: str, page: str = "/login", **data):
    """POST with a CSRF token the client's own session holds, as a browser would."""
    token = csrf_token_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token})


def rows_of(html: str) -> list[tuple[str, str]]:
    """(band, request id) of each row of the queue, in order."""
    return [(band, request_id) for band, request_id in ROW.findall(html)]


# --- who may see it ------------------------------------------------------------------------------

@pytest.mark.parametrize("role", [None, "person", "operator", "auditor", "service"])
def test_only_operators_see_the_dashboard(app, signed_in, api_token, role):
    (request_id,) = bulk_requests(app, 1)
    client = signed_in(None if role == "service" else role)
    headers = {"Authorization": f"Bearer {api_token('service')}"} if role == "service" else {}
    for method, path in operator_pages(request_id):
        if method == "GET":
            response = client.get(path, headers=headers)
        else:
            response = post_form(client, path, **({"_": ""}))
        body = response.get_data(as_text=True)
        if role == "operator":
            assert response.status_code in (200, 303), (path, response.status_code)
        elif role in (None, "service"):  # a bearer token is no sign-in on a page
            assert response.status_code == 302, (path, response.status_code)
            assert response.headers["Location"].startswith("/login?next="), response.headers["Location"]
        else:
            assert response.status_code == 403, (path, response.status_code)
            assert "These pages are for operators only." in body
    nav = client.get("/").get_data(as_text=True)
    assert ('href="/operator">Dashboard</a>' in nav) is (role == "operator")


def test_a_refused_look_is_in_the_audit_trail(app, signed_in, session):
    client = signed_in("person")
    assert client.get("/operator").status_code == 403
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "forbidden")
                           .order_by(AuditEvent.seq.desc()))
    assert event.actor_id == client.user.id and event.target == "/operator"


# --- the queue -----------------------------------------------------------------------------------

def test_every_state_in_order_with_time_left_and_nothing_personal(app, signed_in, make_person):
    ids, secrets = seed_every_state(app, make_person)
    client = signed_in("operator")
    html = client.get("/operator").get_data(as_text=True)

    order = [request_id for _band, request_id in rows_of(html)]
    assert order == [ids[s] for s in ("overdue", "needs_attention", "in_progress", "received", "completed")]
    assert [band for band, _id in rows_of(html)] == ["overdue", "needs_attention", "in_progress", "received",
                                                     "completed"]
    time_left = dict(zip(order, re.findall(r'<td class="time-left"><time [^>]*>([^<]+)</time>', html), strict=True))
    assert time_left[ids["overdue"]] == "Overdue by 2 days"
    assert time_left[ids["needs_attention"]] == "5 days left"
    assert time_left[ids["in_progress"]] == "10 days left"
    assert time_left[ids["received"]] == "20 days left"
    assert time_left[ids["completed"]] == "Completed in 4 minutes, within the deadline"
    assert "1 email, 1 account, 1 handle, 1 Ownstory account" in html  # kinds and counts
    assert re.search(r"<strong>1</strong> overdue", html) and re.search(r"<strong>1</strong> needs attention", html)
    assert "Revocations are failing at" in html and "Demo Social (2)" in html

    # Filters: by status, overdue or not, and network; each leaves the order as it was.
    def listed(**query) -> list[str]:
        response = client.get("/operator", query_string=query)
        assert response.status_code == 200
        return [request_id for _band, request_id in rows_of(response.get_data(as_text=True))]

    assert listed(status="needs_attention") == [ids["needs_attention"]]
    assert listed(status="in_progress") == [ids["overdue"], ids["in_progress"]]
    assert listed(overdue="yes") == [ids["overdue"]]
    assert ids["overdue"] not in listed(overdue="no") and len(listed(overdue="no")) == 4
    assert listed(network="demo") == order
    assert listed(status="completed", network="demo") == [ids["completed"]]

    # No page names anyone: not their email (nor the reason text that held it), accounts, handles or ids.
    pages = [html, client.get("/operator/health").get_data(as_text=True)]
    pages += [client.get(f"/operator/requests/{i}").get_data(as_text=True) for i in ids.values()]
    for page in pages:
        secrets.assert_absent(page)


@pytest.mark.parametrize("query", [{"status": "lost"}, {"overdue": "maybe"}, {"network": "nowhere"},
                                   {"cursor": "not-a-cursor"}, {"cursor": "W10"}, {"cursor": "x" * 5000},
                                   {"cursor": "WyIyMDI2LTExLTI1VDE5OjAwOjAwIiwgOSwgIngiLCAiYSJd"}])
def test_bad_filters_and_cursors_are_400_not_a_wider_list(app, signed_in, query):
    client = signed_in("operator")
    response = client.get("/operator", query_string=query)
    assert response.status_code == 400
    assert "<h1>" in response.get_data(as_text=True)


def test_pages_walk_every_request_once_in_a_bounded_number_of_queries(app, signed_in):
    ids = set(bulk_requests(app, 330))
    client = signed_in("operator")
    seen: list[tuple[str, str]] = []
    url, pages, most = "/operator", 0, 0
    while url:
        with counted(app) as statements:
            response = client.get(url)
        assert response.status_code == 200
        most = max(most, len(statements))
        html = response.get_data(as_text=True)
        seen += rows_of(html)
        match = NEXT.search(html)
        url = match.group(1).replace("&amp;", "&") if match else None
        pages += 1
        assert pages < 20
    assert pages == 7  # 330 at 50 a page
    assert sorted(i for _b, i in seen) == sorted(ids)  # each once
    bands = [b for b, _i in seen]
    order = ["overdue", "needs_attention", "in_progress", "received", "completed"]
    assert bands == sorted(bands, key=order.index)  # the bands never interleave across pages
    # The sign-in, five bands at most, the page's step counts, the counts and the health: never one per row.
    assert most <= 12, most


def test_queue_statements_do_not_grow_with_the_table(app, signed_in):
    bulk_requests(app, 40)
    client = signed_in("operator")
    with counted(app) as small:
        client.get("/operator")
    bulk_requests(app, 400)
    with counted(app) as large:
        client.get("/operator")
    assert len(large) <= len(small)  # more rows fill a page from fewer bands; never a statement per row
    if app.extensions["ownstory_db"]["engine"].dialect.name == "postgresql":  # SQLite's dialect adds OFFSET 0
        assert not [s for s in large if re.search(r"\bOFFSET\b", s, re.I)]


# --- one request and its retry -----------------------------------------------------------------------

def test_retry_makes_failing_steps_due_now_and_is_audited(app, signed_in, make_person, session, sessions):
    ids, secrets = seed_every_state(app, make_person)
    stuck = ids["needs_attention"]
    client = signed_in("operator")
    page = client.get(f"/operator/requests/{stuck}").get_data(as_text=True)
    assert "HTTP 503 from Demo Social" in page and "Needs attention" in page
    assert "1 step is waiting to try again" in page
    assert re.search(r"<td>6</td>", page)  # attempts
    secrets.assert_absent(page)

    before = utcnow()
    response = client.post(f"/operator/requests/{stuck}/retry", data={"csrf_token": csrf_token_from(page)})
    assert response.status_code == 303 and response.headers["Location"] == f"/operator/requests/{stuck}"
    with sessions() as db:
        revoke = db.scalar(select(ErasureStep).where(ErasureStep.request_id == stuck, ErasureStep.kind == "revoke"))
        assert revoke.status == "retrying" and revoke.not_before <= utcnow()
        assert revoke.last_error == "HTTP 503 from Demo Social"  # shown until a run succeeds
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "optout_retry"))
    assert event.actor_kind == "operator" and event.actor_id == client.user.id and event.target == stuck
    assert event.details == {"steps": 1, "via": "dashboard"} and event.at >= before
    assert audit.verify(session) == []
    after = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 step will be tried again now." in after


def test_a_request_shows_the_rows_verify_deleted_late(app, signed_in, make_person, sessions):
    # Rows the platform wrote while access was being revoked: verify deleted them, and the operator sees how many.
    ids, _secrets = seed_every_state(app, make_person)
    with sessions() as db:
        verify = db.scalar(select(ErasureStep).where(ErasureStep.request_id == ids["completed"],
                                                     ErasureStep.kind == "verify"))
        verify.result = {"residual_rows": 0, "late_rows": [{"store": "platform", "category": "posts", "rows": 3},
                                                           {"store": "platform", "category": "profile", "rows": 1}]}
        db.commit()
    page = signed_in("operator").get(f"/operator/requests/{ids['completed']}").get_data(as_text=True)
    assert "0 rows left; 4 late rows deleted" in page


def test_retry_needs_a_csrf_token_and_a_post(app, signed_in, make_person, sessions):
    ids, _secrets = seed_every_state(app, make_person)
    client = signed_in("operator")
    path = f"/operator/requests/{ids['needs_attention']}/retry"
    assert client.post(path).status_code == 400  # no CSRF token
    assert client.get(path).status_code == 405
    with sessions() as db:
        assert db.scalar(select(ErasureStep.status).where(ErasureStep.request_id == ids["needs_attention"],
                                                          ErasureStep.kind == "revoke")) == "needs_attention"


def test_retry_of_a_finished_request_changes_nothing(app, signed_in, make_person, sessions):
    ids, _secrets = seed_every_state(app, make_person)
    client = signed_in("operator")
    page = client.get(f"/operator/requests/{ids['completed']}").get_data(as_text=True)
    assert "No step is waiting to retry." in page and "Retry now" not in page
    response = client.post(f"/operator/requests/{ids['completed']}/retry", data={"csrf_token": csrf_token_from(page)},
                           follow_redirects=True)
    assert "No step was waiting to retry, so nothing changed." in response.get_data(as_text=True)
    with sessions() as db:
        assert db.get(OptOutRequest, ids["completed"]).status == "completed"


@pytest.mark.parametrize("path", ["/operator/requests/nope", f"/operator/requests/{uuid.uuid4()}",
                                  "/operator/requests/" + "A" * 36])
def test_an_unknown_request_is_404(app, signed_in, path):
    client = signed_in("operator")
    assert client.get(path).status_code == 404
    page = client.get("/operator").get_data(as_text=True)
    assert client.post(path + "/retry", data={"csrf_token": csrf_token_from(page)}).status_code == 404


# --- health and the chart ----------------------------------------------------------------------------

def test_health_names_failing_networks_and_the_chart_reads_without_javascript(app, signed_in, make_person):
    ids, secrets = seed_every_state(app, make_person)
    client = signed_in("operator")
    with counted(app) as statements:
        html = client.get("/operator/health").get_data(as_text=True)
    # The sign-in, the failing steps, the holds, the work still to do, the 30 days' timings (and, with a
    # max_in_flight somewhere, the slots in use: none here).
    assert len(statements) <= 6
    row = re.search(r'<tr class="failing">\s*<th scope="row">Demo Social.*?</tr>', html, re.S).group(0)
    assert re.findall(r"<td>(?:<a [^>]*>)?(\d+)", row)[:2] == ["2", "1"]  # failing, needing attention
    assert "HTTP 503 from Demo Social" in row or "the network timed out" in row

    svg = re.search(r"<svg .*?</svg>", html, re.S).group(0)
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg and "<script" not in svg
    assert "1 request completed in the last 30 days" in svg and "None missed the deadline." in svg
    assert svg.count('<g class="bar">') == 1 and "Deadline: 30 days" in svg
    completed_day = (utcnow() - dt.timedelta(days=3)).date()
    assert f'<time datetime="{completed_day.isoformat()}">' in html  # the numbers as a table too
    secrets.assert_absent(html)


def test_health_says_which_network_asked_to_wait_and_until_when(app, signed_in, session):
    from erasure.engine import queue

    client = signed_in("operator")
    assert "Asked to wait" not in client.get("/operator/health").get_data(as_text=True)
    now = utcnow()
    until = (now + dt.timedelta(minutes=10)).replace(microsecond=0)
    queue.hold(session, "revoke", "demo", until, 0, dt.timedelta(seconds=5))
    queue.hold(session, "revoke", "demo", now + dt.timedelta(minutes=2), 0, dt.timedelta(seconds=5))  # keeps the later
    queue.hold(session, "purge", "billing", now - dt.timedelta(seconds=1), 0, dt.timedelta(seconds=5))  # over already
    session.commit()
    html = client.get("/operator/health").get_data(as_text=True)
    held = re.search(r'<ul class="held">.*?</ul>', html, re.S).group(0)
    assert "<strong>Demo Social</strong> asked us to wait" in held and "no worker revokes there" in held
    assert f'<time datetime="{until.isoformat().replace("+00:00", "Z")}">' in held
    assert "billing" not in held


@pytest.fixture
def small_places(config_files):
    """Demo Social takes 2 revocation calls at once, the platform's store 3 erasures: before the app reads them."""
    takes_at_once(config_files["networks"], "[networks.demo.revocation]", 2)
    takes_at_once(config_files["datamap"], PLATFORM_STORE, 3)


def calls_row(html: str, name: str) -> list[str]:
    """The cells of a network's or service's row in "Still to do", as text."""
    table = re.search(r'<table class="calls">.*?</table>', html, re.S).group(0)
    row = re.search(rf'<th scope="row">{re.escape(name)}.*?</tr>', table, re.S).group(0)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]


def test_health_shows_what_each_network_and_service_has_still_to_do_and_its_calls_at_once(
        small_places, app, signed_in, make_person, sessions, database_url):
    secrets = Secrets()
    requests = [person_leaves(app, make_person, secrets, requested_at=utcnow(), n=n) for n in range(3)]
    with sessions() as db:
        db.execute(update(ErasureStep).where(ErasureStep.request_id == requests[0], ErasureStep.kind == "revoke")
                   .values(status="running"))
        db.execute(update(ErasureStep).where(ErasureStep.request_id == requests[1], ErasureStep.kind == "revoke")
                   .values(not_before=utcnow() - dt.timedelta(hours=2, minutes=30)))
        db.execute(update(ErasureStep).where(ErasureStep.request_id == requests[2], ErasureStep.kind == "revoke")
                   .values(status="retrying", not_before=utcnow() + dt.timedelta(minutes=5)))  # not due: no wait
        db.commit()
    client = signed_in("operator")
    html = client.get("/operator/health").get_data(as_text=True)
    # Two revocations wait, one is claimed; the platform's store has every request's erasure still to do.
    # One revocation has waited two and a half hours for a worker; the erasures, only since they were laid.
    assert calls_row(html, "Demo Social") == ["Revocations", "2", "2.5 hours", "1", "0 of at most 2"]
    platform = calls_row(html, "platform")
    assert platform[:2] == ["Erasures", "3"] and platform[3:] == ["0", "0 of at most 3"]
    assert re.fullmatch(r"less than 1 second|\d+ seconds?", platform[2]), platform
    secrets.assert_absent(html)

    # A worker, here or in another process, in a call at Demo Social holds one of its slots; the page sees them.
    engine = make_engine(database_url)
    slots = shared_slots.for_engine(engine)
    held = [slots.take("revoke:demo", 2), slots.take("revoke:demo", 2)]
    try:
        html = client.get("/operator/health").get_data(as_text=True)
        assert calls_row(html, "Demo Social")[4] == "2 of at most 2: at its limit"
        held.pop().release()
        assert calls_row(client.get("/operator/health").get_data(as_text=True), "Demo Social")[4] == "1 of at most 2"
    finally:
        for slot in held:
            slot.release()
        engine.dispose()

    # A network taken out of the catalogue with revocations still to do, failing, is listed all the same, with
    # no link to a queue filter that takes only the catalogue's networks.
    with sessions() as db:
        db.execute(update(ErasureStep).where(ErasureStep.request_id == requests[1], ErasureStep.kind == "revoke")
                   .values(target="myspace", status="retrying"))
        db.commit()
    html = client.get("/operator/health").get_data(as_text=True)
    assert calls_row(html, "not in the catalogue") == ["Revocations", "1", "2.5 hours", "0", "No limit"]
    failing = re.search(r'<tr class="failing">\s*<th scope="row">not in the catalogue.*?</tr>', html, re.S).group(0)
    assert "(myspace)" in failing and "<td>1</td>" in failing
    assert "network=myspace" not in html
    assert client.get("/operator?network=demo").status_code == 200
    assert calls_row(html, "Demo Social")[:4] == ["Revocations", "1", "—", "1"]  # only the one not due yet


def test_the_chart_with_no_completions_and_a_missed_deadline(app):
    from erasure.oversight.charts import duration, time_to_complete
    from erasure.oversight.queries import DayTimings

    days = [DayTimings(dt.date(2026, 11, d)) for d in range(1, 31)]
    empty = str(time_to_complete(days, 30 * 86400))
    assert "No request completed in the last 30 days." in empty and '<g class="bar' not in empty
    days[4] = DayTimings(dt.date(2026, 11, 5), 3, 3600.0, 40 * 86400.0, 1, 30 * 86400.0)
    late = str(time_to_complete(days, 30 * 86400))
    assert '<g class="bar missed">' in late and "1 missed the deadline" in late and "40 days" in late
    assert [duration(s) for s in (0, 1, 59, 90, 3600, 5400, 86400 * 12)] == [
        "less than 1 second", "1 second", "59 seconds", "1.5 minutes", "1 hour", "1.5 hours", "12 days"]
    assert [duration(s) for s in (3600 * 2.001, 86400 * 9.96, 86400 * 1.04)] == ["2 hours", "10 days", "1 day"]
