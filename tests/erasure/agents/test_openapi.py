"""The OpenAPI document describes the DRP endpoints, and what they answer keeps to it."""
from __future__ import annotations

DOC = "/api/v1/openapi.json"
OPERATIONS = {("post", "/drp/v1/agent/{agent_id}"), ("get", "/drp/v1/agent/{agent_id}"),
              ("post", "/drp/v1/data-rights-request"), ("get", "/drp/v1/data-rights-request/{request_id}"),
              ("delete", "/drp/v1/data-rights-request/{request_id}")}


def _keeps_to(schema: dict, body: dict) -> None:
    """The document's object schemas, checked by hand: required fields, no others, and enums."""
    assert set(schema["required"]) <= set(body), set(schema["required"]) - set(body)
    assert set(body) <= set(schema["properties"]), set(body) - set(schema["properties"])
    for name, value in body.items():
        if "enum" in schema["properties"][name]:
            assert value in schema["properties"][name]["enum"], (name, value)


def test_the_document_describes_every_drp_operation(served, agent):
    doc = agent.http.get(served.base + DOC, timeout=10).json()
    documented = {(method, path) for path, item in doc["paths"].items() if path.startswith("/drp/")
                  for method in item if method != "parameters"}
    assert documented == OPERATIONS
    post = doc["paths"]["/drp/v1/data-rights-request"]["post"]
    assert "text/plain" in post["requestBody"]["content"]
    assert post["security"] == [{"drpBearer": []}]
    assert post["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/DrpError")
    assert doc["components"]["securitySchemes"]["drpBearer"]["scheme"] == "bearer"
    schemas = doc["components"]["schemas"]

    answers = [agent.exercise("deletion", email="unsure@example.org", **{"agent-request-id": "x"}).json(),
               agent.exercise("access", email="otto@elsewhere.example", email_verified=True).json(),
               agent.exercise("sale:opt-out", email="nobody@example.org", email_verified=True).json()]
    answers.append(agent.revoke(answers[0]["request_id"]).json())
    for answer in answers:
        _keeps_to(schemas["DrpExerciseStatus"], answer)
    for refused in (agent.post(b"!"), agent.status("5b0e2d6a-0000-4000-8000-000000000000"), agent.info("NOBODY")):
        _keeps_to(schemas["DrpError"], refused.json())
