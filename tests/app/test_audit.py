"""The audit trail: what is recorded, who may read it, and that tampering is found and named."""
import json
import threading

import pytest
from sqlalchemy import delete, func, insert, select, update

from app import audit
from app.db import utcnow
from app.models import ApiToken, AuditEvent
from app.security import token_hash
from consent.suppression import Identity
from erasure.context import context_from_app
from erasure.models import ErasureStep
from erasure.optout import service
from tests.conftest import PASSWORD, db_session


def trail(app) -> list[AuditEvent]:
    with db_session(app) as db:
        return list(db.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def actions(app) -> list[tuple]:
    return [(e.actor_kind, e.action, e.outcome) for e in trail(app)]


def token_id(app, token: str) -> str:
    with db_session(app) as db:
        return db.scalar(select(ApiToken.id).where(ApiToken.token_hash == token_hash(token)))


def as_text(events: list[AuditEvent]) -> str:
    return json.dumps([[e.actor_id, e.action, e.target, e.outcome, e.details] for e in events])


# --- what is recorded ----------------------------------------------------------------------------

def test_sign_up_sign_out_and_sign_in_are_recorded_without_the_email(app, client, csrf_post):
    email = "audited.person@example.org"
    assert csrf_post(client, "/signup", {"email": email, "password": PASSWORD}).status_code == 302
    assert csrf_post(client, "/logout", page="/me").status_code == 302
    assert csrf_post(client, "/login", {"email": email, "password": "not the password"}).status_code == 400
    assert csrf_post(client, "/login", {"email": "nobody@example.org", "password": PASSWORD}).status_code == 400
    assert csrf_post(client, "/login", {"email": email, "password": PASSWORD}).status_code == 302

    events = trail(app)
    person_id = events[0].actor_id
    assert [(e.actor_kind, e.actor_id, e.action, e.target, e.outcome) for e in events] == [
        ("person", person_id, "signup", None, "ok"),
        ("person", person_id, "logout", None, "ok"),
        ("anonymous", None, "login_failed", person_id, "refused"),
        ("anonymous", None, "login_failed", None, "refused"),
        ("person", person_id, "login", None, "ok"),
    ]
    assert [e.details for e in events if e.action == "login_failed"] == [
        {"reason": "wrong_password"}, {"reason": "unknown_account"}]
    assert "example.org" not in as_text(events) and PASSWORD not in as_text(events)


def test_401_and_403_are_recorded_on_the_api_and_on_pages(app, client, api_token, make_person, login):
    assert client.get("/api/v1/optouts").status_code == 401
    assert client.get("/api/v1/optouts", headers={"Authorization": "Bearer ows_made_up"}).status_code == 401
    service_token = api_token("service")
    assert client.get("/api/v1/audit", headers={"Authorization": f"Bearer {service_token}"}).status_code == 403
    operator = make_person(role="operator")
    login(client, operator)
    assert client.get("/me").status_code == 403  # a page for people only

    refusals = [e for e in trail(app) if e.outcome == "refused"]
    assert [(e.actor_kind, e.action, e.target, e.details["status"], e.details["credential"]) for e in refusals] == [
        ("anonymous", "auth_failed", "/api/v1/optouts", 401, "none"),
        ("anonymous", "auth_failed", "/api/v1/optouts", 401, "bearer"),
        ("service", "forbidden", "/api/v1/audit", 403, "bearer"),
        ("operator", "forbidden", "/me", 403, "session"),
    ]
    assert refusals[2].actor_id == token_id(app, service_token)
    assert refusals[3].actor_id == operator.id
    assert service_token not in as_text(trail(app)) and "ows_made_up" not in as_text(trail(app))


def test_the_target_of_a_refusal_is_the_route_never_the_path(app, client):
    assert client.get("/api/v1/optouts/liz@example.org").status_code == 401
    [event] = trail(app)
    assert event.target == "/api/v1/optouts/<request_id>"


@pytest.fixture
def stuck_request(app, sessions) -> str:
    with sessions() as db:
        submitted = service.submit(db, context_from_app(app), user=None, grants=[], scope="all", now=utcnow(),
                                   given=[Identity("account", "9001", "demo")], source="service")
        db.execute(update(ErasureStep).values(status="needs_attention"))
        db.commit()
        return submitted.request.id


def test_an_operators_retry_is_recorded(app, client, api_token, stuck_request):
    token = api_token("operator")
    response = client.post(f"/api/v1/optouts/{stuck_request}/retry", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    [event] = [e for e in trail(app) if e.action == "optout_retry"]
    assert (event.actor_kind, event.actor_id, event.target, event.outcome) == (
        "operator", token_id(app, token), stuck_request, "ok")
    assert event.details["steps"] >= 1


def test_an_auditor_verifying_a_receipt_is_recorded(app, client, api_token):
    token = api_token("auditor")
    response = client.post("/api/v1/receipts/verify", json={"receipt": "not.a.receipt"},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    client.post("/api/v1/receipts/verify", json={"receipt": "not.a.receipt"})  # anyone may; only staff are traced
    assert [(e.actor_kind, e.actor_id, e.action) for e in trail(app) if e.action == "receipt_verify"] == [
        ("auditor", token_id(app, token), "receipt_verify")]


def test_account_token_and_key_commands_are_recorded_as_system(app):
    cli = app.test_cli_runner()
    made = cli.invoke(args=["users", "create", "--email", "staff@example.org", "--role", "operator",
                            "--password", PASSWORD])
    assert made.exit_code == 0, made.output
    token = cli.invoke(args=["tokens", "create", "--role", "service", "--name", "pipeline"]).output.strip()
    tid = token_id(app, token)
    assert cli.invoke(args=["tokens", "revoke", tid]).exit_code == 0
    assert cli.invoke(args=["tokens", "revoke", tid]).exit_code != 0  # nothing revoked, nothing recorded
    rotated = cli.invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output

    events = trail(app)
    assert [(e.actor_kind, e.action, e.target) for e in events] == [
        ("system", "user_create", made.output.strip()),
        ("system", "token_create", tid),
        ("system", "token_revoke", tid),
        ("system", "keys_rotate", rotated.output.split()[-1]),
    ]
    assert events[0].details == {"role": "operator"} and events[1].details == {"role": "service"}
    assert "staff@example.org" not in as_text(events) and token not in as_text(events)


# --- reading it ----------------------------------------------------------------------------------

def test_operators_and_auditors_page_through_the_trail_newest_first(app, client, api_token, sessions):
    with sessions() as db:
        for n in range(5):
            audit.record(db, actor_kind="system", actor_id=None, action=f"test_{n}", now=utcnow())
        db.commit()
    headers = {"Authorization": f"Bearer {api_token('auditor')}"}  # its creation is event 6
    first = client.get("/api/v1/audit?limit=4", headers=headers)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert [i["seq"] for i in first.json["items"]] == [6, 5, 4, 3]
    assert first.json["items"][0]["action"] == "token_create"
    second = client.get(f"/api/v1/audit?limit=4&cursor={first.json['next']}", headers=headers)
    assert [i["action"] for i in second.json["items"]] == ["test_1", "test_0"]
    assert second.json["next"] is None
    item = second.json["items"][-1]
    assert set(item) == {"seq", "at", "actor_kind", "actor_id", "action", "target", "outcome", "details",
                         "prev_hash", "hash"}
    assert item["prev_hash"] == audit.GENESIS
    # Each read is itself on the trail.
    assert [e.details["count"] for e in trail(app) if e.action == "audit_read"] == [4, 2]


TOO_FAR = "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5"  # "seq:" and 20 digits


@pytest.mark.parametrize("query, status", [("cursor=bm90LWEtY3Vyc29y", 400), (f"cursor={TOO_FAR}", 400),
                                           ("limit=0", 422), ("limit=x", 422), ("actor=1", 422)])
def test_bad_queries_are_refused(client, api_token, query, status):
    response = client.get(f"/api/v1/audit?{query}", headers={"Authorization": f"Bearer {api_token('operator')}"})
    assert response.status_code == status, response.get_data(as_text=True)


def test_people_cannot_read_the_trail(app, client, make_person, login):
    login(client, make_person())
    response = client.get("/api/v1/audit")
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert not [e for e in trail(app) if e.action == "audit_read"]


# --- tampering -----------------------------------------------------------------------------------

@pytest.fixture
def five_events(sessions):
    with sessions() as db:
        for n in range(5):
            audit.record(db, actor_kind="operator", actor_id=f"token-{n}", action="optout_retry", target=f"req-{n}",
                         details={"steps": n}, now=utcnow())
        db.commit()


def verify_cli(app):
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def test_an_intact_trail_verifies(app, five_events):
    result = verify_cli(app)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "audit trail intact: 5 events"
    listed = app.test_cli_runner().invoke(args=["audit", "list", "--limit", "2"])
    assert listed.exit_code == 0 and len(listed.output.splitlines()) == 2
    assert listed.output.split()[0] == "5"


def _edit_action(db):
    db.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(action="login"))


def _edit_details(db):
    db.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(details={"steps": 99}))


def _delete_middle(db):
    db.execute(delete(AuditEvent).where(AuditEvent.seq == 3))


def _delete_first(db):
    db.execute(delete(AuditEvent).where(AuditEvent.seq == 1))


def _insert_forged(db):
    """Make room at seq 3 and put a well-formed entry there, hashed on top of seq 2."""
    db.execute(update(AuditEvent).where(AuditEvent.seq >= 3).values(seq=AuditEvent.seq + 1000))
    db.execute(update(AuditEvent).where(AuditEvent.seq >= 1000).values(seq=AuditEvent.seq - 999))
    prev = db.scalar(select(AuditEvent.hash).where(AuditEvent.seq == 2))
    forged = AuditEvent(seq=3, at=utcnow(), actor_kind="operator", actor_id="token-x", action="optout_retry",
                        target="req-x", outcome="ok", details={}, prev_hash=prev)
    forged.hash = audit.event_hash(forged)
    db.execute(insert(AuditEvent).values(seq=3, at=forged.at, actor_kind="operator", actor_id="token-x",
                                         action="optout_retry", target="req-x", outcome="ok", details={},
                                         prev_hash=prev, hash=forged.hash))


def _append_forged_tip(db):
    db.execute(insert(AuditEvent).values(seq=6, at=utcnow(), actor_kind="system", actor_id=None, action="forged",
                                         target=None, outcome="ok", details={},
                                         prev_hash=db.scalar(select(AuditEvent.hash).where(AuditEvent.seq == 5)),
                                         hash="f" * 64))


@pytest.mark.parametrize("tamper, named", [
    (_edit_action, "hash mismatch at seq 3: the entry was edited"),
    (_edit_details, "hash mismatch at seq 2: the entry was edited"),
    (_delete_middle, "gap: seq jumps 2 -> 4; entries are missing"),
    (_delete_first, "gap: the trail starts at seq 2, not 1"),
    (_insert_forged, "broken link at seq 4"),
    (_append_forged_tip, "hash mismatch at seq 6"),
])
def test_tampering_is_found_and_the_first_break_named(app, five_events, tamper, named, sessions):
    with sessions() as db:
        tamper(db)
        db.commit()
        [found] = audit.verify(db)
    assert named in str(found)
    result = verify_cli(app)
    assert result.exit_code == 1
    assert named in result.output


def test_verify_reads_in_batches(monkeypatch, five_events, sessions):
    monkeypatch.setattr(audit, "BATCH", 2)
    with sessions() as db:
        assert audit.verify(db) == []
        _delete_middle(db)
        db.commit()
        assert [b.seq for b in audit.verify(db)] == [4]


def test_concurrent_appends_keep_one_chain(sessions):
    errors = []

    def append(n: int) -> None:
        try:
            for i in range(8):
                audit.record_now(actor_kind="service", actor_id=f"thread-{n}", action="test", details={"i": i},
                                 sessionmaker=sessions)
        except Exception as exc:  # surfaced below, with the thread's name
            errors.append((n, exc))

    threads = [threading.Thread(target=append, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as db:
        assert db.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all() == list(range(1, 49))
        assert db.scalar(select(func.count(func.distinct(AuditEvent.prev_hash)))) == 48
        assert audit.verify(db) == []


def test_record_refuses_what_it_cannot_chain(sessions):
    with sessions() as db:
        with pytest.raises(ValueError):
            audit.record(db, actor_kind="admin", actor_id=None, action="x", now=utcnow())
        with pytest.raises(ValueError):
            audit.record(db, actor_kind="system", actor_id=None, action="x", now=utcnow().replace(tzinfo=None))
        with pytest.raises(ValueError):
            audit.record(db, actor_kind="system", actor_id=None, action="x", details={"blob": "x" * 5000},
                         now=utcnow())


def test_a_refusal_is_recorded_even_when_the_view_held_the_trails_lock(app, client):
    """A view that appended, then refused: its append is rolled back, and the refusal does not wait on it."""
    from flask import abort

    from app.extensions import db

    @app.get("/_half_done")
    def half_done():
        audit.record(db.session, actor_kind="system", actor_id=None, action="never_committed", now=utcnow())
        abort(403)

    assert client.get("/_half_done").status_code == 403
    assert [(e.action, e.target) for e in trail(app)] == [("forbidden", "/_half_done")]


def test_the_audit_api_is_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/audit"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"limit", "cursor"}
    assert {"200", "400", "401", "403", "422"} <= set(operation["responses"])
    assert operation["x-roles"] == ["operator", "auditor"]
