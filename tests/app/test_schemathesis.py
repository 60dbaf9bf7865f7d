"""schemathesis against a live server: every operation of /api/v1/openapi.json, called with a token of a role
the operation accepts and again with one it refuses, must give no 5xx and no answer the document does not allow."""
from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.db import utcnow
from app.openapi import ROLES
from consent.suppression import Identity
from erasure.context import context_from_app
from erasure.models import OptOutRequest
from erasure.optout import service
from erasure.receipts import issue
from tests.helpers_servers import serve

TOKEN_ROLES = ("service", "operator", "auditor")
EXAMPLES = 50  # per operation, for the fuzzing phase; the examples and coverage phases add their own

# Every check that reads one answer; stateful ones (use_after_free, ...) need links the API has no use for.
CONFIG = """
seed = 20261125
[generation]
deterministic = true
database = "none"
with-security-parameters = false
[phases.stateful]
enabled = false
[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
response_headers_conformance.enabled = true
negative_data_rejection.enabled = true
negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "422"]
unsupported_method.enabled = true
allow_header_conformance.enabled = true
"""


@pytest.fixture
def seeded(app, api_token, sessions) -> dict:
    """A token per role, an opt-out still open, and a receipt at leaf 0, so that paths can name real things."""
    ctx = context_from_app(app)
    with sessions() as db:
        closed, open_ = (service.submit(db, ctx, user=None, grants=[], scope="all", now=utcnow(), given=[given],
                                        source="service").request
                         for given in (Identity("account", "9001", "demo"), Identity("email", "open@example.org")))
        db.commit()
        receipt = issue.issue_receipt(db, ctx, db.get(OptOutRequest, closed.id), ctx.log_origin, utcnow())
        db.commit()
        ids = {"request_id": open_.id, "receipt_id": receipt.id, "index": receipt.leaf_index}
    return {"tokens": {role: api_token(role, name=f"schemathesis-{role}") for role in TOKEN_ROLES}, "ids": ids,
            "turns": {}}


@pytest.fixture
def api_schema(request, app, seeded):
    # schemathesis 4.32 reads and renames request.node._nodeid, which pytest 9.2 no longer has.
    request.node._nodeid = request.node.nodeid
    server = serve(app)
    try:
        yield schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json",
                                            config=schemathesis.Config.from_str(CONFIG))
    finally:
        server.stop()


# The Data Rights Protocol's signed endpoints keep to its specification instead (tests/erasure/agents/).
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex="^/drp/")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_to_the_document(case, seeded):
    roles = case.operation.definition.raw.get(ROLES)
    assert roles is not None, "the operation does not say who may call it (app.auth.bearer or anyone)"
    # Cases take turns (schemathesis's given() does not mix with the document's examples): every other one
    # names things that exist rather than random ids, and the refused callers rotate.
    turn = next(seeded["turns"].setdefault(case.operation.label, itertools.count()))
    if turn % 2:
        for name in case.path_parameters or {}:
            case.path_parameters[name] = seeded["ids"][name]
    if not roles:  # open to anyone
        case.call_and_validate()
        return
    routed = case.method.upper() == case.operation.method.upper()  # an undocumented method gets 405 first
    response = case.call_and_validate(headers=_bearer(seeded, roles[0]))
    assert not routed or response.status_code not in (401, 403), f"{roles[0]} was refused: {response.text}"
    refused = [role for role in TOKEN_ROLES if role not in roles] + [None]  # None: no token at all
    other = refused[turn // 2 % len(refused)]
    response = case.call_and_validate(headers=_bearer(seeded, other) if other else {})
    assert not routed or response.status_code == (403 if other else 401), f"{other} was let in: {response.text}"


def _bearer(seeded: dict, role: str) -> dict:
    return {"Authorization": f"Bearer {seeded['tokens'][role]}"}
