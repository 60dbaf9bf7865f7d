"""An honest public status: the suppression check says "opted_out" for someone who left, unless they chose silence."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from consent.models import Suppression
from erasure.models import OptOutRequest
from tests.conftest import csrf_token_from
from tests.erasure.helpers_optout import joined_person, submit_optout

CHECK = "/api/v1/suppressions/check"


def identities_of(person, account: str, handle: str) -> list[dict]:
    return [{"kind": "email", "value": person.email}, {"kind": "account", "network": "demo", "value": account},
            {"kind": "handle", "network": "demo", "value": handle}]


def answers(app, headers, identities: list[dict]) -> list[dict]:
    response = app.test_client().post(CHECK, json={"identities": identities}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["results"]


def test_the_form_offers_the_choice_and_saying_nothing_is_the_default(app, client, make_person, login, csrf_post):
    joined_person(client, make_person, login, csrf_post, account="1001", consent=False)
    page = client.get("/optout").get_data(as_text=True)
    assert "If the platform looks you up after you leave" in page
    radios = re.findall(r'<input ([^>]*)name="public_status" type="radio" value="(yes|no)">', page)
    assert {value: "checked" in attributes for attributes, value in radios} == {"yes": False, "no": True}
    assert "It may say &#34;this person chose to opt out&#34;" in page and "It may only say nothing is held" in page


@pytest.mark.parametrize("choice, reason", [("yes", "opted_out"), ("no", None)])
def test_the_answer_follows_the_persons_choice_before_and_after_the_purge(app, client, make_person, login, csrf_post,
                                                                          worker, service_headers, choice, reason,
                                                                          sessions):
    person = joined_person(client, make_person, login, csrf_post, account="1002")
    asked = identities_of(person, "1002", "omar")
    assert answers(app, service_headers, asked) == [{"suppressed": False, "reason": None}] * 3

    submit_optout(client, csrf_post, "all", public_status=choice)
    assert answers(app, service_headers, asked) == [{"suppressed": True, "reason": reason}] * 3

    worker.drain()  # the request completes and forgets the person; the entries, and the choice, stay
    with sessions() as db:
        assert db.scalar(select(OptOutRequest.status)) == "completed"
        assert {s.show_opted_out for s in db.scalars(select(Suppression))} == {choice == "yes"}
    assert answers(app, service_headers, asked) == [{"suppressed": True, "reason": reason}] * 3


def test_leaving_one_network_quietly(app, client, make_person, login, csrf_post, service_headers):
    person = joined_person(client, make_person, login, csrf_post, account="1003")
    submit_optout(client, csrf_post, "demo", public_status="no")
    assert answers(app, service_headers, identities_of(person, "1003", "mei")) == [
        {"suppressed": False, "reason": None},  # still a member: the email was not part of leaving one network
        {"suppressed": True, "reason": None}, {"suppressed": True, "reason": None}]


def test_a_form_without_the_field_says_nothing(app, client, make_person, login, csrf_post, service_headers):
    person = joined_person(client, make_person, login, csrf_post, account="1004", consent=False)
    token = csrf_token_from(client.get("/optout").get_data(as_text=True))
    assert client.post("/optout", data={"scope": "all", "csrf_token": token}).status_code == 302
    assert answers(app, service_headers, identities_of(person, "1004", "tomas"))[0] == {
        "suppressed": True, "reason": None}


def test_a_choice_we_did_not_offer_is_refused(client, make_person, login, csrf_post, sessions):
    joined_person(client, make_person, login, csrf_post, account="1005", consent=False)
    response = csrf_post(client, "/optout", {"scope": "all", "public_status": "maybe"})
    assert response.status_code == 400
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(OptOutRequest)) == 0


def test_an_opt_out_from_another_system_shows_the_status(app, client, service_headers):
    identity = {"kind": "account", "network": "demo", "value": "2001"}
    answer = client.post("/api/v1/optouts", json={"identities": [identity], "scope": "all"}, headers=service_headers)
    assert answer.status_code == 202
    assert answers(app, service_headers, [identity]) == [{"suppressed": True, "reason": "opted_out"}]


def test_coming_back_ends_the_status(app, client, make_person, login, csrf_post, service_headers):
    person = joined_person(client, make_person, login, csrf_post, account="1001", consent=False)
    submit_optout(client, csrf_post, "all", public_status="no")
    response = csrf_post(client, "/signup", {"email": "back@example.org", "password": person.password})
    assert response.status_code == 302
    from tests.consent.helpers_connect import connect_through_demo

    assert connect_through_demo(client, csrf_post, "1001").status_code in (302, 303)
    account, handle = answers(app, service_headers, identities_of(person, "1001", "liz"))[1:]
    assert account == handle == {"suppressed": False, "reason": None}
