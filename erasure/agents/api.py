"""The Data Rights Protocol 1.0 endpoints under /drp (HTTP only): signed text/plain bodies, bearer tokens from
the pairwise key setup, the Exercise Status object, and errors in the shape of the specification's section 3.06."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException, InternalServerError

from app.db import end_request_transaction, utcnow
from app.errors import handle_http_exception
from app.extensions import db, limiter
from erasure.agents import registry, service
from erasure.agents.claims import read_exercise
from erasure.agents.models import AgentRequest, AuthorizedAgent
from erasure.agents.signing import ENVELOPE, MessageError, open_message
from erasure.agents.wiring import desk_from_app

bp = Blueprint("drp", __name__, url_prefix="/drp")
log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # a signed request is a few hundred bytes; anything much larger is refused with 413
DEFAULT_LIMIT = "60 per minute"  # per agent (OWNSTORY's DRP_RATE_LIMIT in tests)
STATUS_CODES = (400, 401, 403, 404, 405, 409, 413, 415, 429, 500)


# --- errors: {"code": "403", "message": ...} ----------------------------------------------------

def drp_error(status: int, message: str, fatal: bool = False, headers: dict | None = None) -> Response:
    body: dict = {"code": str(status), "message": message}
    if fatal:
        body["fatal"] = True
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _http_error(exc: HTTPException) -> Response:
    end_request_transaction()
    status = exc.code or 500
    kept = {k: v for k, v in (exc.get_headers() or []) if k in ("Allow", "Retry-After")}
    if status == 429 and "Retry-After" not in kept:
        kept["Retry-After"] = "60"
    message = {413: f"The body is larger than {MAX_BODY} bytes.",
               429: "Too many requests from this agent. Nothing was changed; try again later."}.get(status)
    return drp_error(status, message or exc.description or "The request cannot be processed.", headers=kept)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)  # the trace stays in the log
    return _http_error(InternalServerError("Something went wrong on our side. Nothing was changed."))


for _code in STATUS_CODES:  # code by code: the app's own handler for a code would otherwise come first
    bp.register_error_handler(_code, _http_error)
bp.register_error_handler(HTTPException, _http_error)
bp.register_error_handler(Exception, _unexpected)


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _unrouted(exc: HTTPException):
    """A path or method no route takes is no blueprint's: under /drp/v1 it is answered in the protocol's shape."""
    if request.path.startswith(f"{bp.url_prefix}/v1/"):
        return _http_error(exc)
    return handle_http_exception(exc)


# --- who is calling -----------------------------------------------------------------------------

def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _agent() -> AuthorizedAgent:
    agent = registry.agent_of_token(db.session, _bearer())
    if agent is None:
        raise MessageError(403, "The bearer token is missing, unknown, or its agent is disabled.")
    return agent


def _limit_key() -> str:
    """Limits count per agent, by its bearer token. Calls without a valid one (key setups, refusals) count per
    client address: naming an agent must not let anyone use up that agent's limit."""
    agent = registry.agent_of_token(db.session, _bearer())
    return f"drp-agent:{agent.id}" if agent is not None else f"drp-address:{get_remote_address()}"


def _limit() -> str:
    return current_app.config.get("DRP_RATE_LIMIT") or DEFAULT_LIMIT


per_agent = limiter.shared_limit(_limit, scope="drp", key_func=_limit_key)  # one count across the endpoints


def _body() -> bytes:
    request.max_content_length = MAX_BODY  # a longer body is refused with 413 as it is read
    return request.get_data(cache=False)


def _refused(exc: MessageError) -> Response:
    end_request_transaction()
    return drp_error(exc.status, exc.message)


# --- the endpoints ------------------------------------------------------------------------------

@bp.post("/v1/agent/<agent_id>")
@per_agent
def key_setup(agent_id: str):
    """Pair-wise key setup (2.05): a fresh bearer token for a message signed with the agent's key."""
    body = _body()
    try:
        with db.writing():
            token = registry.key_setup(db.session, agent_id, body, current_app.config["DRP_BUSINESS_ID"], utcnow())
    except MessageError as exc:
        log.info("drp key setup refused (%s)", exc.status)
        return Response(status=403)  # no body, as the specification says
    log.info("drp agent %s set up a bearer token", agent_id)
    return jsonify({"agent-id": agent_id, "token": token})


@bp.get("/v1/agent/<agent_id>")
@per_agent
def agent_information(agent_id: str):
    """Agent information (2.06): {} for a valid token of this agent, 403 otherwise."""
    try:
        agent = _agent()
    except MessageError as exc:
        return _refused(exc)
    if agent.id != agent_id:
        return drp_error(403, "The bearer token belongs to another agent.")
    return jsonify({})


@bp.post("/v1/data-rights-request")
@bp.post("/v1/data-rights-request/")  # versions before 0.9.3 had the slash
@per_agent
def exercise():
    """Data Rights Exercise (2.01): a signed request, answered with its Exercise Status."""
    desk = desk_from_app(current_app)
    try:
        agent = _agent()
        body = _body()
        now = utcnow()
        signed = open_message(body, agent.verify_key, agent_id=agent.id, business_id=desk.business_id, now=now)
        asked = read_exercise(signed.claims, desk.ctx.networks)
        with db.writing():
            registry.remember(db.session, signed, now)
            created = service.exercise(desk, db.session, db.session.get_one(AuthorizedAgent, agent.id), asked, now)
            answer = service.status_of(desk, created)
    except MessageError as exc:
        log.info("drp exercise refused (%s)", exc.status)
        return _refused(exc)
    return jsonify(answer)


def _own_request(agent: AuthorizedAgent, request_id: str, lock: bool = False) -> AgentRequest:
    found = service.find(db.session, request_id, lock)
    if found is None:
        raise MessageError(404, "There is no request with this request_id.")
    if found.agent_id != agent.id:
        raise MessageError(403, "This request is another agent's.")
    return found


@bp.get("/v1/data-rights-request/<request_id>")
@per_agent
def status(request_id: str):
    """Data Rights Status (2.02); 403 for another agent's request."""
    desk = desk_from_app(current_app)
    try:
        agent = _agent()
        found = _own_request(agent, request_id)
        if service.due(db.session, found, utcnow()) is not None:  # else only a read: a poll waits for no writer
            with db.writing():
                found = _own_request(agent, request_id, lock=True)
                service.refresh(desk, db.session, found, utcnow())
        answer = service.status_of(desk, found)
    except MessageError as exc:
        return _refused(exc)
    return jsonify(answer)


@bp.delete("/v1/data-rights-request/<request_id>")
@per_agent
def revoke(request_id: str):
    """Data Rights Revoke (2.04): a signed {"reason"}; refused with 409 once something irreversible has run."""
    desk = desk_from_app(current_app)
    try:
        agent = _agent()
        _own_request(agent, request_id)
        body = _body()
        now = utcnow()
        signed = open_message(body, agent.verify_key, agent_id=agent.id, business_id=desk.business_id, now=now,
                              envelope=False)
        reason = signed.claims.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise MessageError(400, "reason is not a string.")
        with db.writing():
            if ENVELOPE & set(signed.claims):
                registry.remember(db.session, signed, now)
            found = _own_request(agent, request_id, lock=True)
            service.refresh(desk, db.session, found, now)
            try:
                service.revoke(desk, db.session, found, reason, now)
            except service.NotRevocable as exc:
                raise MessageError(409, str(exc)) from None
            answer = service.status_of(desk, found)
    except MessageError as exc:
        return _refused(exc)
    return jsonify(answer)
