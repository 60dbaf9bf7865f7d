"""A JSON body nested too deeply is malformed input: every API route that takes a body answers 400 with the usual
error body, never a 500 from the decoder's RecursionError."""
from __future__ import annotations

import uuid

import pytest

from app.openapi import ROLES

DOC = "/api/v1/openapi.json"


def operations_with_a_body(client) -> list[tuple[str, str, list[str]]]:
    """(method, path with every parameter filled, roles) of every operation the document says takes a JSON body
    (the Data Rights Protocol's take signed text/plain)."""
    doc = client.get(DOC).json
    found = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            takes = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            if "application/json" in takes:
                filled = path
                while "{" in filled:
                    start, end = filled.index("{"), filled.index("}")
                    filled = filled[:start] + str(uuid.uuid4()) + filled[end + 1:]
                found.append((method, filled, operation[ROLES]))
    return found


@pytest.mark.parametrize("body", [
    "[" * 100_000,
    '{"receipt": ' + "[" * 100_000,
    '{"identities": [' + '{"a": ' * 50_000,
])
def test_every_json_post_answers_a_body_nested_too_deeply_with_400(client, api_token, body):
    operations = operations_with_a_body(client)
    assert {path for _m, path, _r in operations} >= {
        "/api/v1/receipts/verify", "/api/v1/consent/check", "/api/v1/suppressions/check", "/api/v1/optouts"}
    tokens = {role: api_token(role) for role in ("service", "operator", "auditor")}
    for method, path, roles in operations:
        headers = {"Authorization": f"Bearer {tokens[roles[0]]}"} if roles else {}
        answer = client.open(path, method=method.upper(), data=body, headers=headers,
                             content_type="application/json")
        assert answer.status_code == 400, (method, path, answer.get_data(as_text=True)[:300])
        assert answer.json == {"error": {"code": "bad_request", "message": "Invalid JSON body."}}, path


def test_a_body_nested_deeply_but_within_reach_is_refused_by_its_schema(client, service_headers):
    deep = "[" * 900 + "]" * 900
    for path, body in (("/api/v1/consent/check", '{"checks": ' + deep + "}"),
                       ("/api/v1/suppressions/check", '{"identities": [' + deep + "]}"),
                       ("/api/v1/optouts", '{"identities": ' + deep + ', "scope": "all"}')):
        answer = client.post(path, data=body, headers=service_headers, content_type="application/json")
        assert answer.status_code == 422, (path, answer.get_data(as_text=True)[:300])
        assert answer.json["error"]["code"] == "invalid"
    answer = client.post("/api/v1/receipts/verify", data='{"receipt": "x", "log": ' + deep + "}",
                         content_type="application/json")
    assert answer.status_code == 422
