"""Leaving once: eight quick presses of "Opt out now", a double click, or a platform calling twice make one
request, one receipt in the public log and one set of mails; the second answer says what is under way."""
from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.db import utcnow
from app.models import User
from erasure.models import OptOutRequest, Receipt
from erasure.optout.views import LATE_PRESS
from erasure.receipts import tlog
from tests.conftest import csrf_token_from
from tests.erasure.helpers_optout import joined_person, outbox, prove_account

PRESSES = 8
SESSION_COOKIE = "ownstory_session"


def pressed_at_once(app, client, path: str, form: dict) -> list:
    """POST the form from PRESSES copies of the browser at the same moment, as quick presses send it:
    each with the cookie and CSRF token the page had before the first answer came back."""
    form = {**form, "csrf_token": csrf_token_from(client.get(path).get_data(as_text=True))}
    cookie = client.get_cookie(SESSION_COOKIE).value
    browsers = []
    for _ in range(PRESSES):
        browser = app.test_client()
        browser.set_cookie(SESSION_COOKIE, cookie)
        browsers.append(browser)
    start = threading.Barrier(PRESSES)

    def press(browser):
        start.wait()
        return browser.post(path, data=form)

    with ThreadPoolExecutor(PRESSES) as pool:
        return list(pool.map(press, browsers))


def requests_and_receipts(sessions) -> tuple[int, int, int]:
    with sessions() as db:
        return (db.scalar(select(func.count()).select_from(OptOutRequest)),
                db.scalar(select(func.count()).select_from(Receipt)), tlog.size(db))


def test_eight_presses_at_once_make_one_request_one_receipt_and_one_set_of_mails(
        app, client, make_person, login, csrf_post, worker, sessions):
    joined_person(client, make_person, login, csrf_post, account="1002")

    answers = pressed_at_once(app, client, "/optout", {"scope": "all", "public_status": "yes"})

    made = [a for a in answers if a.status_code == 302]
    assert len(made) == 1, [a.status_code for a in answers]
    assert made[0].headers["Location"].startswith("/optout/")
    again = [a.get_data(as_text=True) for a in answers if a.status_code != 302]
    assert all(a.status_code == 200 for a in answers if a.status_code != 302)
    assert all("You already asked to leave" in page and "Nothing new was started" in page
               and "the link in the mail we sent you" in page for page in again)
    assert requests_and_receipts(sessions)[0] == 1
    assert len(outbox(app)) == 1  # the status link, once

    worker.drain()
    assert requests_and_receipts(sessions) == (1, 1, 1)  # one receipt, one leaf in the public log
    assert len(outbox(app)) == 2 and "complete" in outbox(app)[1]["Subject"]


def test_a_press_that_comes_in_after_the_first_closed_the_account_is_told_what_is_under_way(
        app, client, make_person, login, csrf_post, sessions):
    joined_person(client, make_person, login, csrf_post, account="1005")
    form = {"scope": "all", "public_status": "yes",
            "csrf_token": csrf_token_from(client.get("/optout").get_data(as_text=True))}
    cookie = client.get_cookie(SESSION_COOKIE).value
    late = app.test_client()  # the second press of a double click, sent with the cookie from before the first answer
    late.set_cookie(SESSION_COOKIE, cookie)

    first = client.post("/optout", data=form)
    assert first.status_code == 302
    second = late.post("/optout", data=form)  # the first one closed the account, and every session with it

    page = second.get_data(as_text=True)
    assert second.status_code == 200 and "You already asked to leave" in page and "Nothing new was started" in page
    assert requests_and_receipts(sessions)[0] == 1
    assert late.get("/me").status_code == 302  # the cookie opens nothing else
    # Minutes later the same cookie is an old one, as any other: sign in.
    with sessions() as db:
        db.execute(update(User).where(User.closed_at.is_not(None))
                   .values(closed_at=utcnow() - LATE_PRESS - dt.timedelta(seconds=1)))
        db.commit()
    assert late.post("/optout", data=form).status_code == 302


def test_a_double_click_on_leaving_one_network_makes_one_request(app, client, make_person, login, csrf_post,
                                                                sessions):
    joined_person(client, make_person, login, csrf_post, account="1004")

    answers = pressed_at_once(app, client, "/optout", {"scope": "demo", "public_status": "yes"})

    assert sorted(a.status_code for a in answers) == [200] * (PRESSES - 1) + [302]
    # The second press finds the network already left: it is told so, not "Not a valid choice".
    assert all("You already asked to leave" in a.get_data(as_text=True) and "Demo Social" in a.get_data(as_text=True)
               for a in answers if a.status_code == 200)
    assert requests_and_receipts(sessions)[0] == 1
    assert len(outbox(app)) == 1
    # Pressing again later, from the page still open, answers the same: the request is still under way.
    later = csrf_post(client, "/optout", {"scope": "demo", "public_status": "yes"}, page="/me")
    assert later.status_code == 200 and "You already asked to leave" in later.get_data(as_text=True)
    assert requests_and_receipts(sessions)[0] == 1


def test_leaving_twice_through_forget_makes_one_request(app, client, csrf_post, sessions):
    prove_account(client, csrf_post, "1003")

    answers = pressed_at_once(app, client, "/forget/optout", {"public_status": "yes"})

    assert sorted(a.status_code for a in answers) == [200] * (PRESSES - 1) + [302]
    page = next(a for a in answers if a.status_code == 200).get_data(as_text=True)
    # No email was proven: the link was only ever on the first page, and the page says so.
    assert "You already asked to leave" in page and "the page you were shown when you asked" in page
    assert requests_and_receipts(sessions)[0] == 1


def test_a_platform_calling_eight_times_at_once_gets_one_request(app, service_headers, worker, sessions):
    body = {"identities": [{"kind": "email", "value": "twice@platform.example"},
                           {"kind": "account", "network": "demo", "value": "1304"}], "scope": "all"}
    start = threading.Barrier(PRESSES)

    def call(_):
        start.wait()
        return app.test_client().post("/api/v1/optouts", headers=service_headers, json=body)

    with ThreadPoolExecutor(PRESSES) as pool:
        answers = list(pool.map(call, range(PRESSES)))

    assert [a.status_code for a in answers] == [202] * PRESSES
    assert len({a.json["id"] for a in answers}) == 1  # every answer is the one request
    assert len(outbox(app)) == 1
    worker.drain()
    assert requests_and_receipts(sessions) == (1, 1, 1)
    assert len(outbox(app)) == 2

    # Once it is done, the same identities can be sent again: data may have come in since.
    again = app.test_client().post("/api/v1/optouts", headers=service_headers, json=body)
    assert again.status_code == 202 and again.json["id"] != answers[0].json["id"]


def test_the_database_holds_one_open_opt_out_per_person_and_scope(app, client, make_person, login, csrf_post,
                                                                  sessions):
    """Even for a caller that skips the service's check: the partial unique index refuses the second row."""
    joined_person(client, make_person, login, csrf_post, account="1001", consent=False)
    client.post("/optout", data={"scope": "demo", "public_status": "yes",
                                 "csrf_token": csrf_token_from(client.get("/optout").get_data(as_text=True))})
    with sessions() as db:
        first = db.scalar(select(OptOutRequest))
        copy = {c.name: getattr(first, c.name) for c in OptOutRequest.__table__.c if c.name != "id"}
        db.add(OptOutRequest(**copy))
        with pytest.raises(IntegrityError):
            db.flush()
        db.rollback()
        first = db.scalar(select(OptOutRequest))
        first.status, first.completed_at = "completed", utcnow()  # a finished one does not count
        db.add(OptOutRequest(**{**copy, "status": "received"}))
        db.commit()
    assert requests_and_receipts(sessions)[0] == 2
