"""The OpenAPI document at /api/v1/openapi.json: valid, true to the routes, every operation's callers and errors
said, and schemas as strict as the API is (the API is held to it by test_schemathesis.py)."""
import base64
import json
import re

import pytest
import schemathesis
from marshmallow import ValidationError

from app.openapi import BEARER, ROLES, QueryInteger, StrictBoolean
from erasure.verifier.verify import CHECKS

DOC = "/api/v1/openapi.json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
TOKEN_ROLES = {"service", "operator", "auditor"}
LOG = {"leaf_index": 0, "tree_size": 1, "inclusion": [], "checkpoint": "x"}


@pytest.fixture
def doc(client) -> dict:
    response = client.get(DOC)
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json


def operations(doc: dict):
    """The API's operations; the Data Rights Protocol's under /drp/ keep to its specification instead
    (tests/erasure/agents/test_openapi.py)."""
    for path, item in doc["paths"].items():
        if path.startswith("/drp/"):
            continue
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation, item.get("parameters", []) + operation.get("parameters", [])


def resolve(doc: dict, node: dict) -> dict:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = doc["components"][kind][name]
    return node


def refs_in(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(refs_in(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs_in(v) for v in node))
    return set()


def test_the_document_is_valid_openapi_3(doc):
    assert doc["openapi"] == "3.0.3"
    schemathesis.openapi.from_dict(doc).validate()  # against the OpenAPI 3.0 schema; raises on any break


def test_it_lists_every_route_of_the_api_and_the_jwks(app, doc):
    served = {(method.lower(), re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule))
              for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and rule.rule != DOC
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(method, path) for path, item in doc["paths"].items() for method in item if method in METHODS}
    drp = {(method.lower(), re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule))
           for rule in app.url_map.iter_rules()
           if rule.rule.startswith("/drp/v1/") and not rule.rule.endswith("/")  # the pre-0.9.3 slash is an alias
           for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served | drp | {("get", "/.well-known/jwks.json")}


def test_every_operation_says_who_may_call_it(doc):
    assert doc["components"]["securitySchemes"][BEARER] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"][BEARER]["description"]}
    for path, method, operation, _ in operations(doc):
        where = f"{method.upper()} {path}"
        assert "security" in operation, f"{where} does not say who may call it (app.auth.bearer or anyone)"
        if operation["security"]:
            assert operation["security"] == [{BEARER: []}], where
            assert operation[ROLES] and set(operation[ROLES]) <= TOKEN_ROLES, where
            assert {"401", "403"} <= set(operation["responses"]), where
        else:
            assert operation[ROLES] == [], where
            assert not {"401", "403"} & set(operation["responses"]), where


def test_every_operation_documents_its_answers_and_errors(doc):
    for path, method, operation, parameters in operations(doc):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        assert "default" not in responses, f"{where}: a catch-all hides which errors can happen"
        expected = {"405", "500"}
        if "requestBody" in operation:
            expected |= {"400", "413", "422"}
        if any(p["in"] == "query" for p in parameters):
            expected.add("422")
        if any(p["in"] == "path" for p in parameters):
            expected.add("404")
        assert expected <= set(responses), f"{where} lacks {expected - set(responses)}"
        successes = [code for code in responses if code.startswith("2")]
        assert len(successes) == 1, where
        for code, response in responses.items():
            content = resolve(doc, response)["content"]
            assert all("schema" in media for media in content.values()), f"{where} {code}"
            if not code.startswith("2"):
                assert content == {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}, where


def test_the_error_body_is_the_contracts(doc):
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    detail = resolve(doc, error["properties"]["error"])
    assert set(detail["properties"]) == {"code", "message", "fields"}
    assert sorted(detail["required"]) == ["code", "message"] and detail["additionalProperties"] is False


def test_a_405_is_documented_with_allow(doc):
    allow = doc["components"]["responses"]["MethodNotAllowed"]["headers"]["Allow"]
    assert allow["required"] is True and allow["schema"] == {"type": "string"}


def test_every_schema_an_operation_uses_refuses_unknown_fields(doc):
    used = refs_in(doc["paths"])
    while True:  # follow references inside schemas and responses too
        more = used | set().union(*(refs_in(resolve(doc, {"$ref": ref})) for ref in used))
        if more == used:
            break
        used = more
    schemas = [ref.rsplit("/", 1)[1] for ref in used if ref.startswith("#/components/schemas/")]
    assert {"CheckRequest", "OptOutCreate", "VerifyRequest", "LogProof", "Bundle", "Jwks", "Error"} <= set(schemas)
    for name in schemas:
        assert doc["components"]["schemas"][name].get("additionalProperties") is False, name


def test_the_log_answers_text_where_the_contract_says(doc):
    for path in ("/api/v1/log/checkpoint", "/api/v1/log/key", "/api/v1/log/leaves/{index}"):
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        assert content == {"text/plain": {"schema": {"type": "string"}}}, path
    jwks = doc["paths"]["/.well-known/jwks.json"]["get"]
    assert jwks["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Jwks"}
    assert jwks["security"] == []


def test_a_steps_kind_keeps_the_values_callers_know_and_says_where_forget_went(doc):
    kind = doc["components"]["schemas"]["Step"]["properties"]["kind"]
    assert kind["enum"] == ["revoke", "purge", "verify", "receipt", "notify"]
    assert 'purge step with the target "ownstory"' in kind["description"]


def test_the_verify_answer_names_every_check_of_the_verifier(doc):
    assert set(doc["components"]["schemas"]["VerifyChecks"]["properties"]) == set(CHECKS)


def test_booleans_and_integers_are_strict_in_the_document(doc):
    overdue = next(p for p in doc["paths"]["/api/v1/optouts"]["get"]["parameters"] if p["name"] == "overdue")
    assert overdue["schema"] == {"type": "boolean"}
    log = doc["components"]["schemas"]["LogProof"]["properties"]
    assert log["leaf_index"]["type"] == log["tree_size"]["type"] == "integer"


# --- the API behaves as strictly as its document says ---------------------------------------------

@pytest.mark.parametrize("value", ["true", "1", 1, 0, 1.0, None, "yes"])
def test_a_strict_boolean_takes_only_true_and_false(value):
    with pytest.raises(ValidationError):
        StrictBoolean().deserialize(value)
    assert StrictBoolean().deserialize(True) is True and StrictBoolean().deserialize(False) is False


@pytest.mark.parametrize("value", ["1.0", "1_0", " 5", "5 ", "+5", "٣", "0x1", ""])
def test_a_query_integer_takes_only_ascii_digits(value):
    with pytest.raises(ValidationError):
        QueryInteger().deserialize(value)
    assert QueryInteger().deserialize("42") == 42


@pytest.fixture
def operator(api_token) -> dict:
    return {"Authorization": f"Bearer {api_token('operator')}"}


@pytest.mark.parametrize("query", ["overdue=1", "overdue=True", "overdue=yes", "limit=1.0", "limit=1_0",
                                   "limit=%205", "limit=true", "stauts=completed"])
def test_query_booleans_and_integers_are_strict(client, operator, query):
    response = client.get(f"/api/v1/optouts?{query}", headers=operator)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "invalid" and response.json["error"]["fields"]


def test_query_booleans_take_true_and_false(client, operator):
    for value in ("true", "false"):
        assert client.get(f"/api/v1/optouts?overdue={value}", headers=operator).status_code == 200


@pytest.mark.parametrize("leaf_index", [1.0, 0.5, "0", True, None])
def test_body_integers_are_strict(client, leaf_index):
    body = {"receipt": "a.b.c", "log": {**LOG, "leaf_index": leaf_index}}
    response = client.post("/api/v1/receipts/verify", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "leaf_index" in response.json["error"]["fields"]["log"]


@pytest.mark.parametrize("body", [
    {"receipt": "a.b.c", "extra": 1},
    {"receipt": "a.b.c", "log": {**LOG, "extra": 1}},
    {"receipt": "a.b.c", "owner_proof": {"salt": "x", "identities": [], "k": "secret"}},
])
def test_unknown_fields_are_refused(client, body):
    response = client.post("/api/v1/receipts/verify", json=body)
    assert response.status_code == 422, response.get_data(as_text=True)


def test_a_malformed_body_is_400_with_the_error_body(client):
    response = client.post("/api/v1/receipts/verify", data="{", content_type="application/json")
    assert response.status_code == 400
    assert response.json == {"error": {"code": "bad_request", "message": "Invalid JSON body."}}


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/api/v1/consent/check", {"POST", "OPTIONS"}),
    ("DELETE", "/api/v1/optouts", {"GET", "HEAD", "POST", "OPTIONS"}),
    ("GET", "/api/v1/receipts/verify", {"POST", "OPTIONS"}),  # not taken for a receipt id
    ("POST", "/.well-known/jwks.json", {"GET", "HEAD", "OPTIONS"}),
    ("PUT", "/api/v1/log/leaves/0", {"GET", "HEAD", "OPTIONS"}),
])
def test_a_405_carries_allow_and_the_error_body(client, method, path, allowed):
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
    assert response.mimetype == "application/json"
    assert response.json["error"]["code"] == "method_not_allowed" and response.json["error"]["message"]


# Found by schemathesis on PostgreSQL, or by reading the routes it exercised: each was a 500.
@pytest.mark.parametrize("path, body", [
    ("/api/v1/consent/check", {"checks": [{"network": "demo", "subject": "a\x00b", "purpose": "scoring"}]}),
    ("/api/v1/consent/check", {"checks": [{"network": "demo", "account": "a\ud800b", "purpose": "scoring"}]}),
    ("/api/v1/suppressions/check", {"identities": [{"kind": "account", "network": "demo", "value": "a\ud800"}]}),
    ("/api/v1/optouts", {"identities": [{"kind": "email", "value": "a\x00b@example.org"}], "scope": "all"}),
    ("/api/v1/optouts", {"identities": [{"kind": "account", "network": "demo", "value": "\x00"}], "scope": "all"}),
])
def test_text_no_database_can_hold_is_refused_with_422(client, api_token, path, body):
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {api_token('service')}"})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json["error"]["fields"]


def test_a_cursor_naming_no_opt_out_is_400(client, operator):
    forged = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", "a\x00"]).encode()).decode()
    response = client.get(f"/api/v1/optouts?cursor={forged.rstrip('=')}", headers=operator)
    assert response.status_code == 400 and response.json["error"]["code"] == "bad_request"


@pytest.mark.parametrize("index", ["4611686018427387903", "2147483648", "²", "00x"])
def test_a_leaf_past_the_log_is_404(client, index):
    response = client.get(f"/api/v1/log/leaves/{index}")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("receipt_id", ["not-a-receipt", "00000000-0000-4000-8000-000000000000"])
def test_an_unknown_receipt_is_404(client, receipt_id):
    response = client.get(f"/api/v1/receipts/{receipt_id}")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
