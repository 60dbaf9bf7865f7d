"""The erasure API: platforms opting people out, the suppression check, and operators' view of opt-outs."""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid

import pytest
from sqlalchemy import func, select, update

from app.db import utcnow
from consent.grants import store_grant
from consent.models import Grant, Suppression
from consent.suppression import Identity
from erasure.context import context_from_app
from erasure.models import ErasureStep, OptOutRequest, StepKind
from erasure.optout import service
from tests.conftest import db_session
from tests.erasure.helpers_optout import demo_token_active, joined_person, outbox, submit_optout
from tests.helpers_statements import counted

OPTOUTS = "/api/v1/optouts"
SUPPRESSIONS = "/api/v1/suppressions/check"
CONSENT = "/api/v1/consent/check"
DETAIL_FIELDS = {"id", "status", "scope", "requested_at", "deadline", "completed_at", "steps", "receipt_id"}
EXTRA_FIELDS = {"source", "overdue", "identity_kinds"}  # counts and flags, never personal data
STEP_FIELDS = {"kind", "target", "status", "attempts", "last_error", "done_at"}
STEP_KINDS = ("revoke", "purge", "verify", "receipt", "notify")  # as the API's callers know them
T0 = dt.datetime(2026, 11, 25, 19, 0, tzinfo=dt.UTC)


# --- fixtures and helpers ----------------------------------------------------------------------

def connect(app, user, account_id: str, handle: str | None = None) -> None:
    """Store a grant the way the OAuth callback does, without a trip to the network."""
    ctx = context_from_app(app)
    with db_session(app) as db:
        store_grant(db, ctx.vault, user.id, ctx.networks["demo"],
                    {"access_token": "at-" + account_id},
                    {"sub": account_id, "preferred_username": handle or "h" + account_id}, utcnow())
        db.commit()


def make_requests(app, times: list[dt.datetime]) -> list[str]:
    """Opt-outs for identities nobody signed up with, requested at the given times."""
    ctx, ids = context_from_app(app), []
    with db_session(app) as db:
        for at in times:
            given = [Identity("account", f"acct-{uuid.uuid4().hex[:8]}", "demo")]
            submitted = service.submit(db, ctx, user=None, grants=[], scope="all", now=at, given=given,
                                       source="service")
            db.commit()
            ids.append(submitted.request.id)
    return ids


def set_status(app, request_id: str, status: str) -> None:
    with db_session(app) as db:
        db.execute(update(OptOutRequest).where(OptOutRequest.id == request_id).values(status=status))
        db.commit()


def count_rows(app, model) -> int:
    with db_session(app) as db:
        return db.scalar(select(func.count()).select_from(model))


def walk(client, headers, **query) -> list[list[dict]]:
    """Every page of the listing, following `next` to the end."""
    pages, cursor = [], None
    while True:
        response = client.get(OPTOUTS, query_string={**query, **({"cursor": cursor} if cursor else {})},
                              headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        pages.append(response.json["items"])
        cursor = response.json["next"]
        if cursor is None:
            return pages
        assert len(pages) < 1000, "the cursor does not move on"


def listed_ids(client, headers, **query) -> list[str]:
    return [item["id"] for page in walk(client, headers, **query) for item in page]


def suppression_check(client, headers, identities: list[dict]) -> list[dict]:
    response = client.post(SUPPRESSIONS, json={"identities": identities}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["results"]


def consent_reason(client, headers, account: str) -> str:
    response = client.post(CONSENT, headers=headers,
                           json={"checks": [{"network": "demo", "account": account, "purpose": "scoring"}]})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["results"][0]["reason"]


def assert_error(response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]


def assert_nothing_personal(text: str, *, emails=(), accounts=(), handles=(), subjects=()) -> None:
    lowered = text.lower()
    for email in emails:
        assert email.lower() not in lowered, email
    for value in (*accounts, *handles, *subjects):
        # Whole tokens only: "1001" must not be mistaken inside a timestamp or a UUID.
        assert not re.search(rf"(?<![\w.\-]){re.escape(value)}(?![\w\-])", text), value


# --- GET /api/v1/optouts -----------------------------------------------------------------------

@pytest.mark.parametrize("limit", [1, 4, 7, 200])
def test_the_cursor_walks_every_opt_out_once_newest_first_even_when_times_tie(app, client, operator_headers,
                                                                             limit, sessions):
    # 17 requests in 5 instants: ties of up to 4 that a page boundary must cut through.
    times = [T0 + dt.timedelta(seconds=s) for s in (0, 0, 0, 0, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4)]
    made = make_requests(app, times)
    with sessions() as db:
        rows = db.execute(select(OptOutRequest.requested_at, OptOutRequest.id)).all()
    newest_first = [request_id for _at, request_id in sorted(rows, reverse=True)]
    assert sorted(newest_first) == sorted(made)

    pages = walk(client, operator_headers, limit=limit)
    seen = [item["id"] for page in pages for item in page]
    assert seen == newest_first  # every one exactly once, in order: no duplicates, no gaps
    assert all(len(page) == limit for page in pages[:-1]) and 0 < len(pages[-1]) <= limit
    assert len(pages) == -(-len(made) // limit)


def test_the_cursor_is_not_thrown_by_new_opt_outs_arriving_mid_walk(app, client, operator_headers):
    first = make_requests(app, [T0] * 3 + [T0 + dt.timedelta(seconds=1)] * 3)
    page = client.get(OPTOUTS, query_string={"limit": 4}, headers=operator_headers).json
    make_requests(app, [T0 + dt.timedelta(seconds=9)] * 2)  # newer: they belong before the cursor
    rest = client.get(OPTOUTS, query_string={"limit": 4, "cursor": page["next"]}, headers=operator_headers).json
    assert rest["next"] is None
    assert sorted(i["id"] for i in page["items"] + rest["items"]) == sorted(first)


def test_the_default_page_is_fifty(app, client, operator_headers):
    make_requests(app, [T0 + dt.timedelta(milliseconds=n) for n in range(51)])
    answer = client.get(OPTOUTS, headers=operator_headers).json
    assert len(answer["items"]) == 50 and answer["next"]
    rest = client.get(OPTOUTS, query_string={"cursor": answer["next"]}, headers=operator_headers).json
    assert len(rest["items"]) == 1 and rest["next"] is None


def test_the_listing_filters_by_status_overdue_network_and_time(app, client, operator_headers, sessions):
    now = utcnow()
    old_open, old_done = make_requests(app, [now - dt.timedelta(days=40), now - dt.timedelta(days=39)])
    stuck, recent, fresh = make_requests(app, [now - dt.timedelta(days=2), now - dt.timedelta(hours=1),
                                               now - dt.timedelta(minutes=5)])
    set_status(app, old_done, "completed")
    set_status(app, stuck, "needs_attention")
    # Only opt-outs with a revoke step at a network are found by that network.
    with sessions() as db:
        request = db.get(OptOutRequest, recent)
        request.steps.append(ErasureStep(position=99, phase=1, kind="revoke", target="demo", params={},
                                         status="pending", not_before=now))
        db.commit()

    def ids(**query):
        return set(listed_ids(client, operator_headers, **query))

    everyone = {old_open, old_done, stuck, recent, fresh}
    assert ids() == everyone
    assert ids(status="completed") == {old_done}
    assert ids(status="needs_attention") == {stuck}
    assert ids(status="received") == {old_open, recent, fresh}
    assert ids(overdue="true") == {old_open}  # past its deadline and not completed
    assert ids(overdue="false") == everyone - {old_open}
    assert ids(overdue="true", status="completed") == set()
    assert ids(network="demo") == {recent}
    assert ids(network="nowhere") == set()
    iso = (now - dt.timedelta(days=3)).isoformat()
    assert ids(since=iso) == {stuck, recent, fresh}
    assert ids(until=iso) == {old_open, old_done}
    # Any zone is understood, and brought to UTC.
    in_tokyo = (now - dt.timedelta(days=3)).astimezone(dt.timezone(dt.timedelta(hours=9))).isoformat()
    assert ids(since=in_tokyo) == {stuck, recent, fresh}
    assert ids(since=(now - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == {stuck, recent, fresh}
    items = {i["id"]: i for i in walk(client, operator_headers)[0]}
    assert items[old_open]["overdue"] is True and items[old_done]["overdue"] is False


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


BAD_QUERIES = [
    ("limit 0", {"limit": "0"}), ("limit 201", {"limit": "201"}), ("limit negative", {"limit": "-1"}),
    ("limit abc", {"limit": "abc"}), ("limit fraction", {"limit": "1.5"}), ("limit empty", {"limit": ""}),
    ("limit huge", {"limit": "9" * 40}),
    ("overdue maybe", {"overdue": "maybe"}), ("overdue empty", {"overdue": ""}),
    ("status bogus", {"status": "bogus"}), ("status of a step", {"status": "retrying"}),
    ("since without zone", {"since": "2026-01-01T00:00:00"}), ("since a date", {"since": "2026-01-01"}),
    ("since garbage", {"since": "yesterday"}), ("until without zone", {"until": "2026-01-01T00:00:00"}),
    ("since beyond UTC", {"since": "0001-01-01T00:00:00+01:00"}),
    ("until beyond UTC", {"until": "9999-12-31T23:59:59-01:00"}),
    ("network empty", {"network": ""}), ("network long", {"network": "n" * 65}),
    ("unknown parameter", {"email": "liz@example.org"}),
    ("cursor garbage", {"cursor": "garbage"}), ("cursor punctuation", {"cursor": "!!!***"}),
    ("cursor unicode", {"cursor": "été🙂"}), ("cursor empty", {"cursor": ""}), ("cursor long", {"cursor": "A" * 201}),
    ("cursor an object", {"cursor": _cursor({"2026-01-01T00:00:00+00:00": 1, "b": 2})}),
    ("cursor a string", {"cursor": _cursor("ab")}), ("cursor numbers", {"cursor": _cursor([1, 2])}),
    ("cursor three parts", {"cursor": _cursor(["2026-01-01T00:00:00+00:00", "x", "y"])}),
    ("cursor naive time", {"cursor": _cursor(["2026-01-01T00:00:00", "x"])}),
    ("cursor id not text", {"cursor": _cursor(["2026-01-01T00:00:00+00:00", 5])}),
    ("cursor beyond UTC", {"cursor": _cursor(["0001-01-01T00:00:00+01:00", "x"])}),
    ("cursor not UTF-8", {"cursor": base64.urlsafe_b64encode(b"\xff\xfe[1]").decode()}),
]


@pytest.mark.parametrize("query", [q for _, q in BAD_QUERIES], ids=[name for name, _ in BAD_QUERIES])
def test_bad_listing_queries_are_refused_not_a_500(app, client, operator_headers, query):
    make_requests(app, [T0])
    assert_error(client.get(OPTOUTS, query_string=query, headers=operator_headers), 400, 422)


# --- GET /api/v1/optouts/<id> and POST .../retry -----------------------------------------------

def test_an_opt_out_answers_the_contract_fields(app, client, operator_headers, service_headers):
    made = client.post(OPTOUTS, json={"identities": [{"kind": "email", "value": "nobody@example.org"}],
                                      "scope": "all"}, headers=service_headers)
    assert made.status_code == 202, made.get_data(as_text=True)
    answer = client.get(f"{OPTOUTS}/{made.json['id']}", headers=operator_headers)
    assert answer.status_code == 200
    body = answer.json
    assert DETAIL_FIELDS <= set(body) <= DETAIL_FIELDS | EXTRA_FIELDS
    assert body["id"] == made.json["id"] and body["scope"] == "all" and body["status"] == "received"
    assert body["completed_at"] is None and body["receipt_id"] is None
    requested, deadline = (dt.datetime.fromisoformat(body[k]) for k in ("requested_at", "deadline"))
    assert requested.utcoffset() == dt.timedelta(0) and deadline - requested == dt.timedelta(days=30)
    assert body["identity_kinds"] == {"email": 1}
    assert body["steps"], "a request always has steps"
    for step in body["steps"]:
        assert set(step) == STEP_FIELDS
        assert step["kind"] in STEP_KINDS and step["status"] == "pending" and step["attempts"] == 0
        assert step["last_error"] is None and step["done_at"] is None and isinstance(step["target"], str)
    kinds = [s["kind"] for s in body["steps"]]
    assert kinds == sorted(kinds, key=STEP_KINDS.index)  # in the order they run: revoke, purge, verify, ...
    assert kinds[-1] == "notify" and "verify" in kinds


def test_a_forget_step_is_shown_as_a_purge_of_ownstorys_own_records(app, client, operator_headers,
                                                                     service_headers):
    made = client.post(OPTOUTS, json={"identities": [{"kind": "email", "value": "nobody@example.org"}],
                                      "scope": "all"}, headers=service_headers)
    with app.extensions["ownstory_db"]["sessionmaker"]() as db:
        stored = [(s.kind, s.target) for s in db.scalars(
            select(ErasureStep).where(ErasureStep.request_id == made.json["id"]).order_by(ErasureStep.position))]
    shown = [(s["kind"], s["target"]) for s in client.get(f"{OPTOUTS}/{made.json['id']}",
                                                           headers=operator_headers).json["steps"]]
    assert (StepKind.FORGET, "ownstory") in stored
    assert shown == [("purge", "ownstory") if kind == StepKind.FORGET else (kind, target) for kind, target in stored]


@pytest.mark.parametrize("path", [
    str(uuid.uuid4()), "not-a-uuid", "x" * 5000, "été🙂日本", "%00", "a%00b", "..", "..%2F..%2Fadmin",
    "'%20OR%201=1--", "%25", "{00000000-0000-0000-0000-000000000000}", "1",
], ids=["unknown uuid", "not a uuid", "very long", "unicode", "NUL", "NUL inside", "dot dot", "slashes",
        "SQL", "percent", "braces", "one"])
@pytest.mark.parametrize("method, suffix", [("GET", ""), ("POST", "/retry")])
def test_an_unknown_or_absurd_id_is_404(app, client, operator_headers, path, method, suffix):
    make_requests(app, [T0])
    assert_error(client.open(f"{OPTOUTS}/{path}{suffix}", method=method, headers=operator_headers), 404)


@pytest.mark.parametrize("method, suffix", [("GET", ""), ("POST", "/retry")])
def test_a_real_id_with_anything_added_is_404(app, client, operator_headers, method, suffix):
    (request_id,) = make_requests(app, [T0])
    for path in (request_id + "0", request_id + "x" * 100, request_id.upper(), request_id.replace("-", ""),
                 f"urn:uuid:{request_id}", f" {request_id}"):
        assert_error(client.open(f"{OPTOUTS}/{path}{suffix}", method=method, headers=operator_headers), 404)
    assert client.open(f"{OPTOUTS}/{request_id}{suffix}", method=method, headers=operator_headers).status_code == 200


def test_retry_makes_the_stuck_steps_due_now(app, client, operator_headers, worker, sessions):
    (request_id,) = make_requests(app, [T0])
    later = utcnow() + dt.timedelta(days=1)
    with sessions() as db:
        steps = list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                                .order_by(ErasureStep.position)))
        assert len(steps) >= 3
        for step, status in zip(steps, ["needs_attention", "retrying"], strict=False):
            step.status, step.not_before, step.attempts, step.last_error = status, later, 6, "HTTP 503 from Demo"
        db.get(OptOutRequest, request_id).status = "needs_attention"
        db.commit()

    answer = client.post(f"{OPTOUTS}/{request_id}/retry", headers=operator_headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert DETAIL_FIELDS <= set(answer.json)
    # The answer shows the steps as they are now, not as the session first read them.
    assert [s["status"] for s in answer.json["steps"][:3]] == ["retrying", "retrying", "pending"]
    assert answer.json["steps"][0]["last_error"] == "HTTP 503 from Demo"  # shown until a run succeeds
    with sessions() as db:
        due = list(db.scalars(select(ErasureStep.not_before).where(ErasureStep.request_id == request_id)))
        assert all(at <= utcnow() for at in due)
    assert client.get(f"{OPTOUTS}/{request_id}", headers=operator_headers).json["steps"] == answer.json["steps"]

    worker.drain()
    done = client.get(f"{OPTOUTS}/{request_id}", headers=operator_headers).json
    assert done["status"] == "completed" and {s["status"] for s in done["steps"]} == {"done"}
    # Retrying a finished request changes nothing.
    again = client.post(f"{OPTOUTS}/{request_id}/retry", headers=operator_headers)
    assert again.status_code == 200 and again.json == done


def test_retry_is_a_post(app, client, operator_headers):
    (request_id,) = make_requests(app, [T0])
    response = client.get(f"{OPTOUTS}/{request_id}/retry", headers=operator_headers)
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"] and "GET" not in response.headers["Allow"]
    assert response.json["error"]["code"] == "method_not_allowed"


def test_operators_never_see_personal_data(app, client, make_person, login, csrf_post, operator_headers,
                                           service_headers, worker):
    person = joined_person(client, make_person, login, csrf_post, account="1001")
    submit_optout(client, csrf_post, "all", reason="other", reason_text=f"write to me at {person.email}")
    other = make_person()
    connect(app, other, "77001", handle="rosa")
    client = app.test_client()  # a program's client: no cookies
    by_platform = client.post(OPTOUTS, headers=service_headers, json={"scope": "all", "identities": [
        {"kind": "email", "value": other.email.upper()},
        {"kind": "handle", "network": "demo", "value": "ghosthandle"},
        {"kind": "account", "network": "demo", "value": "88002"}]})
    assert by_platform.status_code == 202
    secrets = {"emails": [person.email, other.email], "accounts": ["1001", "77001", "88002"],
               "handles": ["liz", "rosa", "ghosthandle"], "subjects": [person.id, other.id]}

    def everything_an_operator_sees() -> str:
        texts = [client.get(OPTOUTS, headers=operator_headers).get_data(as_text=True)]
        for item in client.get(OPTOUTS, headers=operator_headers).json["items"]:
            texts.append(client.get(f"{OPTOUTS}/{item['id']}", headers=operator_headers).get_data(as_text=True))
            texts.append(client.post(f"{OPTOUTS}/{item['id']}/retry", headers=operator_headers)
                         .get_data(as_text=True))
        return "\n".join(texts)

    seen = everything_an_operator_sees()
    assert len(client.get(OPTOUTS, headers=operator_headers).json["items"]) == 2
    assert '"identity_kinds"' in seen
    assert_nothing_personal(seen, **secrets)
    assert_nothing_personal(by_platform.get_data(as_text=True), **secrets)
    worker.drain()
    assert_nothing_personal(everything_an_operator_sees(), **secrets)


# --- POST /api/v1/optouts ------------------------------------------------------------------------

@pytest.mark.parametrize("found_by", ["email", "account"])
def test_a_platform_opts_out_a_signed_up_person_entirely(app, client, make_person, login, csrf_post,
                                                         service_headers, operator_headers, worker,
                                                         demo_network, found_by, sessions, vault):
    person = joined_person(client, make_person, login, csrf_post, account="1002")
    with sessions() as db:
        grant = db.scalar(select(Grant).where(Grant.user_id == person.id))
        access = vault.open(grant.access_token)
    api = app.test_client()
    assert consent_reason(api, service_headers, "1002") == "granted"
    identity = ({"kind": "email", "value": f"  {person.email.upper()} "} if found_by == "email"
                else {"kind": "account", "network": "demo", "value": "1002"})

    answer = api.post(OPTOUTS, json={"identities": [identity], "scope": "all"}, headers=service_headers)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    body = answer.json
    assert body["status"] == "received" and body["scope"] == "all" and body["source"] == "service"
    assert DETAIL_FIELDS - {"steps"} <= set(body)
    # The status link and its k belong to the person: mailed to them, never in the platform's answer.
    text = answer.get_data(as_text=True)
    assert "k=" not in text and "/optout/" not in text and "Location" not in answer.headers
    mails = outbox(app)
    assert len(mails) == 1 and mails[0]["To"] == person.email
    link = re.search(r"/optout/[\w-]+\?k=[\w-]+", mails[0].get_content()).group(0)
    assert body["id"] in link and link.split("k=")[1] not in text

    # The whole account is covered, from this moment: consent, both identities, the account itself.
    assert consent_reason(api, service_headers, "1002") == "opted_out"
    assert suppression_check(api, service_headers, [
        {"kind": "email", "value": person.email}, {"kind": "account", "network": "demo", "value": "1002"},
        {"kind": "handle", "network": "demo", "value": "omar"}]) == [{"suppressed": True, "reason": "opted_out"}] * 3
    assert body["identity_kinds"] == {"email": 1, "account": 1, "handle": 1, "subject": 1}
    detail = api.get(f"{OPTOUTS}/{body['id']}", headers=operator_headers).json
    assert ("revoke", "demo") in {(s["kind"], s["target"]) for s in detail["steps"]}

    worker.drain()
    assert not demo_token_active(demo_network, access)  # revoked at the network by the worker
    done = api.get(f"{OPTOUTS}/{body['id']}", headers=operator_headers).json
    assert done["status"] == "completed" and {s["status"] for s in done["steps"]} == {"done"}
    assert consent_reason(api, service_headers, "1002") == "opted_out"


def test_identities_nobody_signed_up_with_are_suppressed_all_the_same(app, client, service_headers,
                                                                      operator_headers):
    identities = [
        {"kind": "email", "value": "Stranger@Example.org"},
        {"kind": "email", "value": "stranger.other@example.net"},
        {"kind": "account", "network": "demo", "value": "55501"},
        {"kind": "handle", "network": "demo", "value": "stranger"},
    ]
    answer = client.post(OPTOUTS, json={"identities": identities, "scope": "all"}, headers=service_headers)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert answer.json["identity_kinds"] == {"email": 2, "account": 1, "handle": 1}
    assert suppression_check(client, service_headers, identities + [{"kind": "email", "value": "STRANGER@example.ORG"}]
                             ) == [{"suppressed": True, "reason": "opted_out"}] * 5
    assert consent_reason(client, service_headers, "55501") == "opted_out"
    assert count_rows(app, OptOutRequest) == 1
    detail = client.get(f"{OPTOUTS}/{answer.json['id']}", headers=operator_headers).json
    assert "revoke" not in {s["kind"] for s in detail["steps"]}  # nothing was connected, so nothing to revoke
    assert outbox(app)[0]["To"] == "stranger@example.org"


def test_the_email_a_person_signed_up_with_is_suppressed_too(app, client, make_person, service_headers, sessions):
    person = make_person()
    connect(app, person, "66001", handle="june")
    # The platform knows them by another address, and names their network account.
    answer = client.post(OPTOUTS, headers=service_headers, json={"scope": "all", "identities": [
        {"kind": "email", "value": "june@platform.example"}, {"kind": "account", "network": "demo", "value": "66001"}]})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert suppression_check(client, service_headers, [
        {"kind": "email", "value": person.email}, {"kind": "email", "value": "june@platform.example"},
        {"kind": "handle", "network": "demo", "value": "june"}]) == [{"suppressed": True, "reason": "opted_out"}] * 3
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Grant)) == 0


@pytest.mark.parametrize("how", ["two emails", "email and account", "two accounts"])
def test_identities_of_two_people_are_a_conflict(app, client, make_person, service_headers, how):
    ann, bob = make_person(), make_person()
    connect(app, ann, "44001")
    connect(app, bob, "44002")
    ann_email, bob_email = {"kind": "email", "value": ann.email}, {"kind": "email", "value": bob.email}
    ann_account = {"kind": "account", "network": "demo", "value": "44001"}
    bob_account = {"kind": "account", "network": "demo", "value": "44002"}
    identities = {"two emails": [ann_email, bob_email], "email and account": [ann_email, bob_account],
                  "two accounts": [ann_account, bob_account]}[how]
    answer = client.post(OPTOUTS, json={"identities": identities, "scope": "all"}, headers=service_headers)
    assert_error(answer, 409)
    assert answer.json["error"]["code"] == "conflict"
    assert_nothing_personal(answer.get_data(as_text=True), emails=[ann.email, bob.email], accounts=["44001", "44002"])
    # Nothing happened to either of them.
    assert count_rows(app, OptOutRequest) == 0 and count_rows(app, Suppression) == 0
    assert count_rows(app, Grant) == 2
    # One person named twice over is no conflict.
    same = client.post(OPTOUTS, json={"identities": [ann_email, ann_account], "scope": "all"}, headers=service_headers)
    assert same.status_code == 202


IDENTITY = {"kind": "email", "value": "liz@example.org"}
BAD_BODIES = [
    ("no identities", {"identities": [], "scope": "all"}),
    ("identities missing", {"scope": "all"}),
    ("51 identities", {"identities": [{"kind": "email", "value": f"p{n}@example.org"} for n in range(51)],
                       "scope": "all"}),
    ("unknown kind", {"identities": [{"kind": "phone", "value": "+15550100"}], "scope": "all"}),
    ("subject kind", {"identities": [{"kind": "subject", "value": "x"}], "scope": "all"}),
    ("account without network", {"identities": [{"kind": "account", "value": "1001"}], "scope": "all"}),
    ("handle without network", {"identities": [{"kind": "handle", "value": "liz"}], "scope": "all"}),
    ("email with network", {"identities": [{**IDENTITY, "network": "demo"}], "scope": "all"}),
    ("scope demo", {"identities": [IDENTITY], "scope": "demo"}),
    ("scope missing", {"identities": [IDENTITY]}),
    ("scope not text", {"identities": [IDENTITY], "scope": ["all"]}),
    ("unknown network", {"identities": [{"kind": "account", "network": "myspace", "value": "1"}], "scope": "all"}),
    ("value a number", {"identities": [{"kind": "account", "network": "demo", "value": 1001}], "scope": "all"}),
    ("value null", {"identities": [{"kind": "email", "value": None}], "scope": "all"}),
    ("value empty", {"identities": [{"kind": "email", "value": ""}], "scope": "all"}),
    ("value blank", {"identities": [{"kind": "account", "network": "demo", "value": "   "}], "scope": "all"}),
    ("value too long", {"identities": [{"kind": "email", "value": "a" * 310 + "@example.org"}], "scope": "all"}),
    ("email without @", {"identities": [{"kind": "email", "value": "liz.example.org"}], "scope": "all"}),
    ("kind not text", {"identities": [{"kind": 1, "value": "x"}], "scope": "all"}),
    ("identities an object", {"identities": IDENTITY, "scope": "all"}),
    ("identity a string", {"identities": ["liz@example.org"], "scope": "all"}),
    ("identity null", {"identities": [None], "scope": "all"}),
    ("unknown identity field", {"identities": [{**IDENTITY, "name": "Liz"}], "scope": "all"}),
    ("unknown top-level field", {"identities": [IDENTITY], "scope": "all", "reason": "x"}),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[name for name, _ in BAD_BODIES])
def test_bad_opt_out_bodies_are_refused(app, client, service_headers, body):
    answer = client.post(OPTOUTS, json=body, headers=service_headers)
    assert_error(answer, 400, 422)
    assert count_rows(app, OptOutRequest) == 0 and count_rows(app, Suppression) == 0


JSON = "application/json"
RAW_BODIES = [("{", JSON), ("null", JSON), ("[]", JSON), ('[{"identities": []}]', JSON), ('"all"', JSON), ("", JSON),
              (b'{"scope": "\xff"}', JSON), ("identities=x&scope=all", "application/x-www-form-urlencoded"),
              ('{"identities": [{"kind": "email", "value": "a@b.c"}], "scope": "all"}', "text/plain")]


@pytest.mark.parametrize("data, content_type", RAW_BODIES, ids=[repr(d)[:24] + " " + c for d, c in RAW_BODIES])
@pytest.mark.parametrize("path", [OPTOUTS, SUPPRESSIONS])
def test_a_body_that_is_not_a_json_object_is_refused_not_a_500(app, client, service_headers, path, data,
                                                              content_type):
    assert_error(client.post(path, data=data, content_type=content_type, headers=service_headers), 400, 422)
    assert count_rows(app, OptOutRequest) == 0


def test_an_unknown_network_is_named(client, service_headers):
    answer = client.post(OPTOUTS, headers=service_headers, json={"scope": "all", "identities": [
        IDENTITY, {"kind": "handle", "network": "myspace", "value": "tom"}]})
    assert_error(answer, 422)
    assert answer.json["error"]["fields"] == {"identities": {"1": {"network": ["unknown network 'myspace'"]}}}


# --- POST /api/v1/suppressions/check -----------------------------------------------------------

def test_suppression_answers_in_order_and_keeps_a_chosen_silence(app, client, make_person, login, csrf_post,
                                                                 service_headers):
    shown = joined_person(client, make_person, login, csrf_post, account="1003")
    submit_optout(client, csrf_post, "all")
    quiet_client = app.test_client()
    quiet = joined_person(quiet_client, make_person, login, csrf_post, account="1004")
    submit_optout(quiet_client, csrf_post, "all", public_status="no")
    stayed = make_person()
    connect(app, stayed, "33001", handle="stays")

    asked = [
        ({"kind": "email", "value": shown.email.upper()}, True, "opted_out"),
        ({"kind": "email", "value": quiet.email}, True, None),
        ({"kind": "email", "value": stayed.email}, False, None),
        ({"kind": "account", "network": "demo", "value": "1004"}, True, None),
        ({"kind": "handle", "network": "demo", "value": "mei"}, True, "opted_out"),
        ({"kind": "account", "network": "demo", "value": "33001"}, False, None),
        ({"kind": "handle", "network": "demo", "value": "stays"}, False, None),
        ({"kind": "email", "value": "never-heard-of@example.org"}, False, None),
        ({"kind": "account", "network": "demo", "value": "1003"}, True, "opted_out"),
        ({"kind": "email", "value": f" {shown.email} "}, True, "opted_out"),  # asked again, written otherwise
    ]
    results = suppression_check(app.test_client(), service_headers, [a for a, _, _ in asked])
    assert results == [{"suppressed": s, "reason": r} for _, s, r in asked]


def test_a_thousand_identities_take_as_many_queries_as_one(app, client, service_headers):
    client.post(OPTOUTS, headers=service_headers, json={"scope": "all", "identities": [
        {"kind": "email", "value": "gone@example.org"}, {"kind": "handle", "network": "demo", "value": "gone"}]})
    kinds = [{"kind": "email", "value": "gone@example.org"}, {"kind": "handle", "network": "demo", "value": "gone"},
             {"kind": "account", "network": "demo", "value": "42"}]
    many = [{**kinds[n % 3], "value": kinds[n % 3]["value"] if n < 3 else f"{n}{kinds[n % 3]['value']}"}
            for n in range(1000)]
    counts = {}
    for name, identities in {"one": many[:1], "thousand": many}.items():
        with counted(app) as statements:
            results = suppression_check(client, service_headers, identities)
        counts[name] = len(statements)
        assert len(results) == len(identities)
        assert results[:2] == [{"suppressed": True, "reason": "opted_out"}] * min(2, len(identities))
        assert not any(r["suppressed"] for r in results[2:])
    assert counts["one"] == counts["thousand"], counts


BAD_CHECKS = [
    ("1,001 identities", {"identities": [IDENTITY] * 1001}),
    ("no identities", {"identities": []}),
    ("unknown network", {"identities": [{"kind": "account", "network": "Demo", "value": "1"}]}),
    ("unknown kind", {"identities": [{"kind": "phone", "value": "1"}]}),
    ("account without network", {"identities": [{"kind": "account", "value": "1"}]}),
    ("email not an email", {"identities": [{"kind": "email", "value": "nobody"}]}),
    ("unknown field", {"identities": [IDENTITY], "scope": "all"}),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_CHECKS], ids=[name for name, _ in BAD_CHECKS])
def test_bad_suppression_checks_are_refused(client, service_headers, body):
    assert_error(client.post(SUPPRESSIONS, json=body, headers=service_headers), 422)


def test_the_openapi_document_describes_the_erasure_api(client):
    doc = client.get("/api/v1/openapi.json").json
    paths = doc["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/optouts"])
    assert "get" in paths["/api/v1/optouts/{request_id}"]
    assert set(paths["/api/v1/optouts/{request_id}/retry"]) - {"parameters"} == {"post"}
    assert "post" in paths["/api/v1/suppressions/check"]
    assert "202" in paths["/api/v1/optouts"]["post"]["responses"]
    assert {p["name"] for p in paths["/api/v1/optouts"]["get"]["parameters"]} >= {
        "status", "overdue", "limit", "cursor", "network", "since", "until"}
