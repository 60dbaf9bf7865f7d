"""Who may call which /api/v1 endpoint (people, operators, auditors, services), and bearer-only access."""
import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select, update

from app.db import utcnow
from app.models import ApiToken
from consent.models import Suppression
from consent.suppression import Identity
from erasure.context import context_from_app
from erasure.models import ErasureStep, OptOutRequest
from erasure.optout import service
from tests.helpers_servers import LiveServer

CHECK = {"checks": [{"network": "demo", "account": "1001", "purpose": "scoring"}]}
SUPPRESSION_CHECK = {"identities": [{"kind": "email", "value": "liz@example.org"},
                                    {"kind": "account", "network": "demo", "value": "1001"}]}
OPTOUT = {"identities": [{"kind": "email", "value": "someone@example.org"}], "scope": "all"}

# (method, path, body, the role allowed (None: anyone; a tuple: each of those), its success status).
# {request_id} is an opt-out that exists.
ENDPOINTS = [
    ("POST", "/api/v1/consent/check", CHECK, "service", 200),
    ("POST", "/api/v1/suppressions/check", SUPPRESSION_CHECK, "service", 200),
    ("POST", "/api/v1/optouts", OPTOUT, "service", 202),
    ("GET", "/api/v1/optouts", None, "operator", 200),
    ("GET", "/api/v1/optouts/{request_id}", None, "operator", 200),
    ("POST", "/api/v1/optouts/{request_id}/retry", None, "operator", 200),
    ("GET", "/api/v1/sweeps", None, "operator", 200),
    ("GET", "/api/v1/openapi.json", None, None, 200),
    ("GET", "/api/v1/receipts/{receipt_id}", None, None, 200),
    ("POST", "/api/v1/receipts/verify", {"receipt": "not.a.receipt"}, None, 200),
    ("GET", "/api/v1/log/checkpoint", None, None, 200),
    ("GET", "/api/v1/log/key", None, None, 200),
    ("GET", "/api/v1/log/proof/inclusion?leaf_index=0&tree_size=1", None, None, 200),
    ("GET", "/api/v1/log/proof/consistency?first=1&second=1", None, None, 200),
    ("GET", "/api/v1/log/leaves/{index}", None, None, 200),
    ("GET", "/api/v1/audit", None, ("operator", "auditor"), 200),
]
ROLES = ["anonymous", "person", "operator", "auditor", "service"]


@pytest.fixture
def request_id(app, sessions) -> str:
    """An opt-out that exists, for the endpoints that name one."""
    with sessions() as db:
        submitted = service.submit(db, context_from_app(app), user=None, grants=[], scope="all", now=utcnow(),
                                   given=[Identity("account", "9001", "demo")], source="service")
        db.commit()
        return submitted.request.id


@pytest.fixture
def receipt_id(app, request_id, sessions) -> str:
    """A receipt in the log, for the endpoints anyone may call."""
    from erasure.receipts import issue

    ctx = context_from_app(app)
    with sessions() as db:
        request = db.get(OptOutRequest, request_id)
        db.commit()  # the read ends: issuing takes the log's lock before its first read
        receipt = issue.issue_receipt(db, ctx, request, ctx.log_origin, utcnow())
        db.commit()
        return receipt.id


@pytest.fixture
def caller(app, api_token, make_person, login):
    def make(role: str):
        client = app.test_client()
        headers = {}
        if role == "person":
            login(client, make_person())
        elif role != "anonymous":
            headers["Authorization"] = f"Bearer {api_token(role)}"
        return client, headers

    return make


@pytest.mark.parametrize("method, path, body, allowed, success", ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(caller, request_id, receipt_id, role, method, path, body, allowed, success):
    client, headers = caller(role)
    response = client.open(path.format(request_id=request_id, receipt_id=receipt_id, index=0), method=method,
                           json=body, headers=headers)
    if allowed is None or role in (allowed if isinstance(allowed, tuple) else (allowed,)):
        assert response.status_code == success, response.get_data(as_text=True)
    elif role == "anonymous":
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.json["error"]["code"] == "unauthenticated"
    else:
        assert response.status_code == 403, response.get_data(as_text=True)
        assert response.json["error"]["code"] == "forbidden"
    assert "Set-Cookie" not in response.headers  # the API never sets a cookie, whoever calls it


def test_the_matrix_covers_every_api_endpoint(app):
    """A new endpoint under /api/v1 must say here who may call it."""
    listed = {(method, re.sub(r"\{(\w+)\}", r"<\1>", path.split("?")[0])) for method, path, *_ in ENDPOINTS}
    served = {(method, re.sub(r"<\w+:(\w+)>", r"<\1>", rule.rule))  # <uuid:id> and <id> name the same path
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == listed


def test_refused_callers_change_nothing(caller, request_id, sessions):
    """Only a service opts people out, and only an operator makes stuck steps due."""

    def state():
        with sessions() as db:
            return ([db.scalar(select(func.count()).select_from(m)) for m in (OptOutRequest, Suppression)],
                    sorted(db.execute(select(ErasureStep.id, ErasureStep.status, ErasureStep.not_before)).all()))

    with sessions() as db:
        db.execute(update(ErasureStep).values(status="needs_attention", not_before=utcnow().replace(year=2100)))
        db.commit()
    before = state()
    for role in ("anonymous", "person", "operator", "auditor"):
        client, headers = caller(role)
        assert client.post("/api/v1/optouts", json=OPTOUT, headers=headers).status_code in (401, 403)
    for role in ("anonymous", "person", "auditor", "service"):
        client, headers = caller(role)
        assert client.post(f"/api/v1/optouts/{request_id}/retry", headers=headers).status_code in (401, 403)
    assert state() == before


def test_a_bearer_token_works_whatever_cookies_the_caller_holds(caller):
    client, headers = caller("service")
    assert client.get("/login").status_code == 200  # the session cookie now holds a CSRF token
    response = client.post("/api/v1/consent/check", json=CHECK, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers


def test_one_token_serves_many_calls_at_once(app, api_token, sessions):
    """A busy program calls with one token from many threads: every call answers, none meets a locked database."""
    token = api_token("service")
    server = LiveServer(app).start()
    try:
        def call(_: int) -> int:
            with requests.Session() as http:
                return http.post(f"{server.url}/api/v1/consent/check", json=CHECK, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(64)))
    finally:
        server.stop()
    assert statuses == [200] * 64
    with sessions() as db:
        used = db.scalar(select(ApiToken.last_used_at))
    assert used is not None and utcnow() - used < dt.timedelta(minutes=1)  # `flask tokens list` shows it


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer ows_made_up", "Basic dXNlcjpwYXNz", "ows_x"])
def test_bad_bearer_tokens_get_401(client, header):
    response = client.post("/api/v1/consent/check", json=CHECK, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json == {"error": {"code": "unauthenticated", "message": "A valid bearer token is required."}}


def test_unknown_api_paths_answer_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_wrong_method_answers_405_with_allow(client):
    response = client.get("/api/v1/consent/check")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.json["error"]["code"] == "method_not_allowed"


def test_an_oversized_body_is_refused_with_413(caller):
    client, headers = caller("service")
    response = client.post("/api/v1/consent/check", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                           headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json["error"]["code"] == "too_large"


def test_a_missing_page_is_a_friendly_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Back to the start page" in response.get_data(as_text=True)
