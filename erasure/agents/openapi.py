"""The DRP endpoints in Ownstory's OpenAPI document, written by hand: their bodies are signed text/plain, which
marshmallow cannot describe, and their errors have the specification's own shape (section 3.06), not the API's."""
from __future__ import annotations

from erasure.agents.api import MAX_BODY
from erasure.agents.models import EXERCISES, REASONS, STATUSES
from erasure.agents.service import RESULTS_TTL, VERIFY_TTL
from erasure.agents.signing import MAX_VALIDITY

SCHEME = "drpBearer"
TAG = "Data Rights Protocol 1.0"
SIGNED = {"text/plain": {"schema": {
    "type": "string", "format": "byte", "maxLength": MAX_BODY,
    "description": "base64 of the agent's 64-byte Ed25519 signature followed by the JSON message it signs "
                   "(libsodium's combined mode). The message carries agent-id, business-id, issued-at and "
                   f"expires-at: at most {MAX_VALIDITY.seconds // 60} minutes apart, and each message is "
                   "accepted once."}}}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DrpError"}}}}


def _status(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DrpExerciseStatus"}}}}


ERRORS: dict[str, dict] = {
    "400": _error("Malformed: not base64, not a JSON object, a field of the wrong kind, an unsupported exercise or "
                  "version, or a message that expired or is valid for too long."),
    "403": _error("No bearer token, an unknown one, or one of a disabled agent; a signature that does not verify "
                  "with the agent's key; an agent-id or business-id that is not the token's and this service's; "
                  "another agent's request."),
    "413": _error(f"The body is over {MAX_BODY} bytes."),
    "429": {**_error("Too many requests from this agent; try again after Retry-After seconds."),
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}},
    "500": _error("Something went wrong on our side. Nothing was changed."),
}
REQUEST_ID = {"in": "path", "name": "request_id", "required": True, "schema": {"type": "string", "format": "uuid"}}
AGENT_ID = {"in": "path", "name": "agent_id", "required": True, "schema": {"type": "string", "maxLength": 64},
            "description": "The specification's {agent-id}."}
BEARER: list[dict] = [{SCHEME: []}]

SCHEMAS: dict[str, dict] = {
    "DrpError": {"type": "object", "required": ["code", "message"], "additionalProperties": False, "properties": {
        "code": {"type": "string", "description": "The HTTP status, as a string.", "example": "403"},
        "message": {"type": "string"},
        "fatal": {"type": "boolean"}}},
    "DrpExerciseStatus": {"type": "object", "required": ["request_id", "status", "received_at", "expected_by"],
                          "additionalProperties": False,
                          "description": "DRP 1.0 section 3.03.", "properties": {
        "request_id": {"type": "string", "format": "uuid"},
        "agent_request_id": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "reason": {"type": "string", "enum": list(REASONS)},
        "received_at": {"type": "string", "format": "date-time"},
        "expected_by": {"type": "string", "format": "date-time",
                        "description": "The deadline: OWNSTORY_ERASURE_DEADLINE_DAYS after receipt, as for everyone."},
        "processing_details": {"type": "string"},
        "user_verification_url": {"type": "string", "format": "uri", "description":
                                  "in_progress/need_user_verification: where the person proves the email address "
                                  "(a mailed link) or the network account (signing in at the network) is theirs, "
                                  f"within {VERIFY_TTL.days} days."},
        "results_url": {"type": "string", "format": "uri", "description":
                        "fulfilled: a deletion's signed receipt, or an access request's export (it works once, "
                        f"within {RESULTS_TTL.days} days)."},
        "expires_at": {"type": "string", "format": "date-time"}}},
    "DrpExercise": {"type": "object", "description": "The signed message of a Data Rights Exercise.",
                    "required": ["agent-id", "business-id", "issued-at", "expires-at", "drp.version", "exercise"],
                    "properties": {
        "agent-id": {"type": "string"}, "business-id": {"type": "string", "description": "OWNSTORY_DRP_BUSINESS_ID"},
        "issued-at": {"type": "string", "format": "date-time"}, "expires-at": {"type": "string", "format": "date-time"},
        "agent-request-id": {"type": "string"}, "drp.version": {"type": "string", "enum": ["1.0"]},
        "exercise": {"type": "string", "enum": list(EXERCISES)}, "regime": {"type": "string", "example": "ccpa"},
        "relationships": {"type": "array", "items": {"type": "string"}},
        "status_callback": {"type": "string", "format": "uri",
                            "description": "Each status change is POSTed here as a DrpExerciseStatus, with retries."},
        "email": {"type": "string", "format": "email"}, "email_verified": {"type": "boolean"},
        "phone_number": {"type": "string", "description": "Read, but Ownstory holds no phone numbers to match."},
        "network_accounts": {"type": "array", "maxItems": 20, "description":
                             "Ownstory's own claim: network accounts, matched as /forget matches them.",
                             "items": {"type": "object", "required": ["network", "account_id"], "properties": {
                                 "network": {"type": "string"}, "account_id": {"type": "string"},
                                 "verified": {"type": "boolean"}}}}}},
}

PATHS: dict[str, dict] = {
    "/drp/v1/agent/<agent_id>": {"parameters": [AGENT_ID], "post": {
        "tags": [TAG], "summary": "Pair-wise key setup (2.05)", "security": [],
        "description": "A message signed with the agent's registered key (`flask agents add`) gets a fresh bearer "
                       "token; only its hash is kept. Any failure is 403 with no body.",
        "requestBody": {"required": True, "content": SIGNED},
        "responses": {"200": {"description": "The token.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["agent-id", "token"],
            "properties": {"agent-id": {"type": "string"}, "token": {"type": "string"}}}}}},
            "403": {"description": "The message was refused; no body."},
            "413": ERRORS["413"], "429": ERRORS["429"]}},
        "get": {"tags": [TAG], "summary": "Agent information (2.06)", "security": BEARER,
                "responses": {"200": {"description": "The token is this agent's.", "content": {"application/json": {
                    "schema": {"type": "object", "additionalProperties": False}}}},
                    "403": ERRORS["403"], "429": ERRORS["429"]}}},
    "/drp/v1/data-rights-request": {"post": {
        "tags": [TAG], "summary": "Data Rights Exercise (2.01)", "security": BEARER,
        "description": "The signed message is a DrpExercise. An unverified email or network account waits for "
                       "the person's own proof (need_user_verification): a mailed link, or signing in at the network.",
        "requestBody": {"required": True, "content": SIGNED},
        "responses": {"200": _status("The new request."), "400": ERRORS["400"], "403": ERRORS["403"],
                      "409": _error("This signed message was received before."), "413": ERRORS["413"],
                      "429": ERRORS["429"], "500": ERRORS["500"]}}},
    "/drp/v1/data-rights-request/<request_id>": {"parameters": [REQUEST_ID], "get": {
        "tags": [TAG], "summary": "Data Rights Status (2.02)", "security": BEARER,
        "responses": {"200": _status("The request's status now."), "403": ERRORS["403"],
                      "404": _error("No request with this id."), "429": ERRORS["429"]}},
        "delete": {"tags": [TAG], "summary": "Data Rights Revoke (2.04)", "security": BEARER,
                   "description": 'A signed `{"reason": "..."}`. Allowed while nothing irreversible has run.',
                   "requestBody": {"required": True, "content": SIGNED},
                   "responses": {"200": _status("Revoked."), "400": ERRORS["400"], "403": ERRORS["403"],
                                 "404": _error("No request with this id."),
                                 "409": _error("Something irreversible has run; the message says what."),
                                 "413": ERRORS["413"], "429": ERRORS["429"]}}},
}


def document(spec, url_map) -> None:
    """Add the DRP endpoints to the app's OpenAPI document (app.openapi's error plugin leaves them as they are).

    PATHS is keyed by the routes' rules: the document's paths are derived from them, as for every other route.
    """
    rules = {rule.rule: rule for rule in url_map.iter_rules()}
    spec.components.security_scheme(SCHEME, {
        "type": "http", "scheme": "bearer",
        "description": "A DRP bearer token from POST /drp/v1/agent/{agent_id}."})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema)
    spec.tag({"name": TAG, "description": "The Privacy Infrastructure Provider endpoints, for authorized agents "
                                          "registered with `flask agents add`."})
    for path, operations in PATHS.items():
        parameters = operations.get("parameters")
        spec.path(rule=rules[path], parameters=parameters,
                  operations={k: v for k, v in operations.items() if k != "parameters"})
