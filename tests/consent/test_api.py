"""POST /api/v1/consent/check: answers in order, a constant number of queries, strict input."""
import datetime as dt

import pytest

from consent import ledger, service, suppression
from tests.consent.conftest import PURPOSES_V2
from tests.helpers_statements import counted

NOW = dt.datetime(2026, 11, 25, 19, 0, tzinfo=dt.UTC)
PATH = "/api/v1/consent/check"


@pytest.fixture
def app(make_app, write_purposes):
    """Scoring is at version 2 here, so a consent to version 1 needs renewing."""
    return make_app(purposes=write_purposes(PURPOSES_V2))


@pytest.fixture
def people(app, make_person, connect):
    """One person per answer the check can give; returns (check, expected reason) cases."""
    from app.extensions import db

    granted, withdrawn, stale, quiet, gone = (make_person() for _ in range(5))
    accounts = {user.id: connect(user) for user in (granted, withdrawn, stale, quiet, gone)}
    purposes = app.extensions["purposes"]
    with app.app_context():
        s = db.session
        service.set_consents(s, granted.id, {("demo", "scoring")}, purposes, {"demo"}, NOW)
        service.set_consents(s, withdrawn.id, {("demo", "scoring")}, purposes, {"demo"}, NOW)
        service.set_consents(s, withdrawn.id, set(), purposes, {"demo"}, NOW)
        ledger.append(s, stale.id, "demo", "scoring", 1, "grant", "form", NOW)
        service.set_consents(s, gone.id, {("demo", "scoring")}, purposes, {"demo"}, NOW)
        # `gone` left everything: the opt-out put their account on the suppression list.
        suppression.suppress(s, app.extensions["ownstory_peppers"],
                             [suppression.Identity("account", accounts[gone.id], "demo")], "all", None)
        s.commit()

    def case(user, reason, purpose="scoring", by="account"):
        identity = {"account": accounts[user.id]} if by == "account" else {"subject": user.id}
        return {"network": "demo", "purpose": purpose, **identity}, reason

    return [
        case(granted, "granted"), case(granted, "granted", by="subject"),
        case(granted, "no_consent", "research"), case(quiet, "no_consent", by="subject"),
        case(withdrawn, "withdrawn"), case(stale, "reconsent_required"), case(gone, "opted_out"),
        ({"network": "demo", "purpose": "scoring", "account": "nobody"}, "unknown"),
        ({"network": "demo", "purpose": "scoring", "subject": "no-such-subject"}, "unknown"),
    ]


def test_a_thousand_checks_answer_in_order(app, client, service_headers, people):
    checks = [people[i % len(people)] for i in range(1000)]
    response = client.post(PATH, json={"checks": [c for c, _ in checks]}, headers=service_headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.json["results"]
    assert [r["reason"] for r in results] == [reason for _, reason in checks]
    assert [r["allowed"] for r in results] == [reason == "granted" for _, reason in checks]


def test_the_query_count_does_not_grow_with_the_checks(app, client, service_headers, people):
    by_account = [c for c, _ in people if "account" in c]
    mixed = [c for c, _ in people]
    counts = {}
    # The first call of a token records its use; the next minute's calls do not, so count from the second.
    assert client.post(PATH, json={"checks": by_account[:1]}, headers=service_headers).status_code == 200
    for name, checks in {"one": by_account[:1], "thousand": (by_account * 1000)[:1000],
                         "thousand mixed": (mixed * 1000)[:1000]}.items():
        with counted(app) as statements:
            assert client.post(PATH, json={"checks": checks}, headers=service_headers).status_code == 200
        counts[name] = len(statements)
    assert counts["one"] == counts["thousand"], counts
    assert counts["thousand mixed"] <= counts["one"] + 1, counts  # plus the lookup of subjects by id


def test_anonymous_callers_get_401_before_their_body_is_read(client):
    response = client.post(PATH, data="not json", content_type="text/plain")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthenticated"


ONE = {"network": "demo", "purpose": "scoring", "account": "1001"}
INVALID = [
    ("1,001 checks", {"checks": [ONE] * 1001}, {"checks": ["Length must be between 1 and 1000."]}),
    ("no checks", {"checks": []}, {"checks": ["Length must be between 1 and 1000."]}),
    ("checks missing", {}, {"checks": ["Missing data for required field."]}),
    ("checks null", {"checks": None}, {"checks": ["Field may not be null."]}),
    ("checks not a list", {"checks": {"0": ONE}}, {"checks": ["Not a valid list."]}),
    ("a check not an object", {"checks": ["demo"]}, {"checks": {"0": {"_schema": ["Invalid input type."]}}}),
    ("network missing", {"checks": [ONE, {"purpose": "scoring", "account": "1"}]},
     {"checks": {"1": {"network": ["Missing data for required field."]}}}),
    ("both account and subject", {"checks": [{**ONE, "subject": "s"}]},
     {"checks": {"0": {"_schema": ["Give exactly one of account and subject."]}}}),
    ("neither account nor subject", {"checks": [{"network": "demo", "purpose": "scoring"}]},
     {"checks": {"0": {"_schema": ["Give exactly one of account and subject."]}}}),
    ("account a number", {"checks": [{**ONE, "account": 123}]},
     {"checks": {"0": {"account": ["Not a valid string."]}}}),
    ("empty purpose", {"checks": [{**ONE, "purpose": ""}]},
     {"checks": {"0": {"purpose": ["Length must be between 1 and 64."]}}}),
    ("long account", {"checks": [{**ONE, "account": "9" * 256}]},
     {"checks": {"0": {"account": ["Length must be between 1 and 255."]}}}),
    ("a NUL in an account", {"checks": [ONE, {**ONE, "account": "a\x00b"}]},
     {"checks": {"1": {"account": ["Holds a NUL character or a lone surrogate."]}}}),
    ("a lone surrogate in an account", {"checks": [{**ONE, "account": "\ud800"}]},
     {"checks": {"0": {"account": ["Holds a NUL character or a lone surrogate."]}}}),
    ("unknown field", {"checks": [{**ONE, "email": "liz@example.org"}]},
     {"checks": {"0": {"email": ["Unknown field."]}}}),
    ("unknown top-level field", {"checks": [ONE], "all": True}, {"all": ["Unknown field."]}),
]


@pytest.mark.parametrize("body, fields", [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_invalid_checks_are_named_with_422(client, service_headers, body, fields):
    response = client.post(PATH, json=body, headers=service_headers)
    assert response.status_code == 422
    assert response.json == {"error": {"code": "invalid", "message": "The request is not valid; see fields.",
                                       "fields": fields}}


@pytest.mark.parametrize("field, value", [("purpose", "astrology"), ("network", "myspace")])
def test_an_unknown_purpose_or_network_names_the_check(client, service_headers, field, value):
    response = client.post(PATH, json={"checks": [ONE, {**ONE, field: value}]}, headers=service_headers)
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid"
    assert f"checks[1].{field}" in error["message"] and value in error["message"]
    expected = {"checks": {"1": {field: [f"unknown {field} {value!r}"]}}}
    assert error.get("fields", expected) == expected


@pytest.mark.parametrize("data, content_type, status", [
    ("{", "application/json", 400),
    (b'{"checks": "\xff"}', "application/json", 400),
    ("null", "application/json", 422),
    ("[]", "application/json", 422),
    ('"checks"', "application/json", 422),
    ("", "application/json", 422),
    ("checks=1", "application/x-www-form-urlencoded", 422),
    ('{"checks": []}', "text/plain", 422),
])
def test_a_body_that_is_not_a_json_object_is_refused_not_a_500(client, service_headers, data, content_type, status):
    response = client.post(PATH, data=data, content_type=content_type, headers=service_headers)
    assert response.status_code == status
    assert response.json["error"]["code"] == {400: "bad_request", 422: "invalid"}[status]
    assert response.json["error"]["message"]


def test_the_openapi_document_describes_the_check(client):
    doc = client.get("/api/v1/openapi.json").json
    operation = doc["paths"]["/api/v1/consent/check"]["post"]
    assert "200" in operation["responses"] and "422" in operation["responses"]
    assert {"CheckRequest", "CheckResponse"} <= set(doc["components"]["schemas"])


def test_accounts_spelt_in_any_script_are_found(app, client, service_headers, make_person, connect):
    # A batch travels as one JSON parameter: quotes, backslashes and letters beyond ASCII must come out as sent.
    from app.extensions import db

    people = {account: make_person() for account in ("zoë", 'a "quoted" \\ name', "名前😀", "plain")}
    for account, person in people.items():
        connect(person, account_id=account)
    purposes = app.extensions["purposes"]
    with app.app_context():
        for person in people.values():
            service.set_consents(db.session, person.id, {("demo", "research")}, purposes, {"demo"}, NOW)
        suppression.suppress(db.session, app.extensions["ownstory_peppers"],
                             [suppression.Identity("account", "名前😀", "demo")], "all", None)
        db.session.commit()
    checks = [{"network": "demo", "purpose": "research", "account": account} for account in people]
    response = client.post(PATH, json={"checks": checks + [{**checks[0], "account": "zoe"}]}, headers=service_headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [r["reason"] for r in response.json["results"]] == ["granted", "granted", "opted_out", "granted", "unknown"]
