"""The pages an agent sends a person to: the user_verification_url, where the person proves control of what the
agent did not verify, as /forget asks for it (the one-time email link for an address, signing in at the network
for an account), and an access request's results_url, which hands out the export once."""
from __future__ import annotations

import hmac
import logging
import re
from typing import Any, cast
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from sqlalchemy import CursorResult, select, update

from app import logging as app_logging
from app.db import utcnow
from app.extensions import db, limiter
from app.mail import MailError
from consent import account_control
from consent.models import Grant
from consent.suppression import Identity
from erasure.agents import service
from erasure.agents.claims import Claims
from erasure.agents.models import AgentRequest, AuthorizedAgent
from erasure.agents.wiring import desk_from_app
from erasure.export.document import member_records, proof_records
from erasure.export.views import download
from erasure.forget import control, network_proof
from erasure.optout import behalf
from erasure.optout import service as optout_service
from erasure.stores.datamap import identities_of

bp = Blueprint("drp_pages", __name__, url_prefix="/drp")
log = logging.getLogger(__name__)
RETURN_TO = "drp_return_to"  # session: {request id: the agent's redirect_to}
# Signing in at a network to prove an account: the redirect URI to register with the network, beside /networks/
# and /forget/networks/. The request the sign-in is for waits in the session, as the flow's state does.
CONTROL = account_control.AccountControl("drp_oauth", "/drp/verify/networks/{key}/callback")
PROVING = "drp_proving"  # session: {network key: the request id a sign-in there proves an account for}


class RedactAgentLinks(app_logging.RedactMatches):
    """The results link's token and the verification link's token are in their paths; access logs print paths."""

    PATTERN = re.compile(r"(/drp/(?:results/[^\s/?\"]+|verify/[^\s/?\"]+/email)/)[^\s?\"/]+")


def init_app(app: Flask) -> None:
    RedactAgentLinks.install()


class ConfirmForm(FlaskForm):
    """Only the CSRF token: every change is a POST from our own page."""


def _private(body: str, status: int = 200) -> Response:
    response = current_app.make_response((body, status))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _waiting(request_id: str) -> tuple[AgentRequest, AuthorizedAgent, Claims]:
    """The request, while it waits for this person's proof, with its agent and the claims to prove. Call under
    db.writing(): the request is read afresh, locked, and its status brought up to date first."""
    return _awaiting_proof(_refreshed(request_id))


def _shown(request_id: str) -> tuple[AgentRequest, AuthorizedAgent, Claims]:
    """_waiting() for a page that only shows: the write lock only when the stored status is out of date, so the
    page waits for no writer (a worker's purge batch, on SQLite) while nothing is due."""
    found = service.find(db.session, request_id)
    if found is not None and service.due(db.session, found, utcnow()) is not None:
        with db.writing():  # committed before the page is chosen: a request found out of time stays denied
            found = _refreshed(request_id)
    return _awaiting_proof(found)


def _refreshed(request_id: str) -> AgentRequest | None:
    found = service.find(db.session, request_id, lock=True)
    if found is not None:
        service.refresh(desk_from_app(current_app), db.session, found, utcnow())
    return found


def _awaiting_proof(found: AgentRequest | None) -> tuple[AgentRequest, AuthorizedAgent, Claims]:
    claims = service.open_claims(desk_from_app(current_app), found) if found is not None else None
    if found is None or found.reason != "need_user_verification" or claims is None or not claims.unverified:
        abort(404, "There is nothing to confirm here: the request is finished, was withdrawn, or never existed.")
    return found, db.session.get_one(AuthorizedAgent, found.agent_id), claims


def _address(claims: Claims) -> str:
    if not claims.unverified_email:
        abort(404, "This request has no email address to confirm.")
    return claims.unverified_email


def _masked(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'*' * max(len(local) - 1, 1)}@{domain}"


def _return_link(request_id: str) -> str | None:
    url = session.get(RETURN_TO, {}).get(request_id)
    return url if isinstance(url, str) and urlsplit(url).scheme in ("http", "https") else None


@bp.get("/verify/<request_id>")
def verify(request_id: str):
    asked = request.args.get("request_id")
    if asked is not None and asked != request_id:  # section 3.02.1: the agent's request_id must be this one
        abort(400, "This verification link and its request_id name different requests. Nothing was changed.")
    found, agent, claims = _shown(request_id)
    back = request.args.get("redirect_to", "")
    if back and urlsplit(back).scheme in ("http", "https") and len(back) <= 2000:
        session[RETURN_TO] = {**session.get(RETURN_TO, {}), request_id: back}
    networks = current_app.extensions["networks"]
    return _private(render_template(
        "drp_verify.html", step="ask", agent=agent, exercise=found.exercise, request_id=found.id, form=ConfirmForm(),
        address=_masked(claims.unverified_email) if claims.unverified_email else None,
        networks=[networks[key] for key in claims.unverified_networks if key in networks]))


@bp.post("/verify/<request_id>")
@limiter.limit("10 per hour", methods=["POST"])
def send_link(request_id: str):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "This form has expired. Open the link the agent gave you again.")
    with db.writing():
        found, agent, claims = _waiting(request_id)
        address = _address(claims)
        token = control.new_email_link(db.session, address, utcnow())
    link = f"{current_app.config['BASE_URL']}/drp/verify/{found.id}/email/{token}"
    minutes = int(control.LINK_TTL.total_seconds() // 60)
    try:
        current_app.extensions["ownstory_mailer"].send(address, "Confirm your request", f"""\
{agent.name} asked us, on your behalf, for the {found.exercise} of your data.
Open this link within {minutes} minutes to confirm that this is your address. It works once:
{link}

If you did not ask {agent.name} for this, ignore this mail and nothing happens.
""")
    except MailError:
        log.warning("drp request %s: the confirmation link could not be mailed", found.id)
    return _private(render_template("drp_verify.html", step="sent", agent=agent, minutes=minutes,
                                    address=_masked(address)))


@bp.get("/verify/<request_id>/email/<token>")
def email_link(request_id: str, token: str):
    """Only shows the confirmation: a mail scanner that follows the link spends nothing."""
    found, agent, claims = _shown(request_id)
    _address(claims)
    if not control.link_usable(db.session, token, utcnow()):
        return _private(render_template("drp_verify.html", step="spent", agent=agent), 400)
    return _private(render_template("drp_verify.html", step="confirm", agent=agent, exercise=found.exercise,
                                    form=ConfirmForm()))


@bp.post("/verify/<request_id>/email/<token>")
@limiter.limit("20 per hour", methods=["POST"])
def confirm(request_id: str, token: str):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "This form has expired. Open the link from your mail again.")
    desk = desk_from_app(current_app)
    with db.writing():
        found, agent, claims = _waiting(request_id)
        address = _address(claims)
        proven = control.use_email_link(db.session, token, utcnow())
        if proven is None or proven != address:
            db.session.rollback()
            return _private(render_template("drp_verify.html", step="spent", agent=agent), 400)
        service.carry_out(desk, db.session, found, [*claims.verified, Identity("email", proven)], utcnow(),
                          " The person confirmed their email address.")
    log.info("drp request %s: the person confirmed their address", found.id)
    return _private(render_template("drp_verify.html", step="done", agent=agent, proven="address",
                                    back=_return_link(found.id)))


@bp.post("/verify/<request_id>/networks/<key>")
@limiter.limit("20 per hour", methods=["POST"])
def start_network(request_id: str, key: str):
    """Off to the network to sign in, for an account the agent named and did not verify."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "This form has expired. Open the link the agent gave you again.")
    network = CONTROL.network(key)
    found, _agent, claims = _shown(request_id)
    if key not in claims.unverified_networks:
        abort(404, f"This request names no {network.name} account to confirm.")
    db.session.rollback()  # nothing stays open while the person is at the network
    session[PROVING] = {**session.get(PROVING, {}), key: found.id}
    return redirect(CONTROL.start(network), code=303)


@bp.get("/verify/networks/<key>/callback")
def network_callback(key: str):
    """Back from the network: the request goes ahead only for the very account the agent named."""
    network = CONTROL.network(key)
    proving = dict(session.get(PROVING, {}))
    request_id = proving.pop(key, None)  # single use, as the flow's state is
    session[PROVING] = proving
    try:
        proven = CONTROL.finish(network)
    except account_control.ControlError as exc:
        failed = network_proof.failure(network, exc)
        log.info("drp: no proof of a %s account: %s", key, failed.reason)
        if failed.start_over or request_id is None:
            abort(400, f"{failed.message} Open the link the agent gave you again.")
        return _private(render_template("drp_verify.html", step="failed", message=failed.message,
                                        again=url_for("drp_pages.verify", request_id=request_id)),
                        200 if failed.chose else 400)
    network_proof.discard(network, proven.token, proven.account_id)
    if request_id is None:
        abort(400, "This sign-in did not start from a request's page. Nothing was changed.")
    desk = desk_from_app(current_app)
    with db.writing():
        found, agent, claims = _waiting(request_id)
        if not claims.awaits_account(network.key, proven.account_id):
            db.session.rollback()
            log.info("drp request %s: a %s account other than the one named was signed in with", found.id, key)
            return _private(render_template("drp_verify.html", step="other_account", agent=agent,
                                            network=network.name,
                                            again=url_for("drp_pages.verify", request_id=found.id)), 400)
        service.carry_out(desk, db.session, found, [*claims.verified, *network_proof.identities(network, proven)],
                          utcnow(), f" The person signed in at {network.name} to show the account is theirs.")
    log.info("drp request %s: the person proved control of the %s account", found.id, key)
    return _private(render_template("drp_verify.html", step="done", agent=agent, proven="account",
                                    back=_return_link(found.id)))


# --- an access request's results -----------------------------------------------------------------

@bp.get("/results/<request_id>/<token>")
def results(request_id: str, token: str):
    """The export, once: the link is spent by the first download, and ends after RESULTS_TTL in any case."""
    desk = desk_from_app(current_app)
    now = utcnow()
    found = service.find(db.session, request_id)
    if found is None or not hmac.compare_digest(token.encode(), desk.results_token(found.id).encode()):
        abort(404, "There is nothing at this address.")
    claims = service.open_claims(desk, found)
    db.session.commit()
    with db.writing():
        spent = cast(CursorResult[Any], db.session.execute(
            update(AgentRequest)
            .where(AgentRequest.id == found.id, AgentRequest.exercise == "access", AgentRequest.status == "fulfilled",
                   AgentRequest.results_used_at.is_(None), AgentRequest.results_expires_at > now)
            .values(results_used_at=now, claims_sealed=None)
            .execution_options(synchronize_session=False))).rowcount
        if spent != 1 or claims is None:
            db.session.rollback()
            abort(410, "This link has been used already, or its time has run out. Ask the agent to send a new request.")
        identities, records = _export_records(desk, list(claims.verified))
    log.info("drp request %s: the results were fetched", found.id)
    return download(identities, records)


def _export_records(desk: service.Desk, proven: list[Identity]):
    """What /export gives a member these identities belong to, or else what /forget's export gives a proof."""
    ctx = desk.ctx
    try:
        user = behalf.owner_of(db.session, proven)
    except behalf.SeveralOwners:
        user = None  # then only what the identities themselves key
    if user is not None:
        grants = list(db.session.scalars(select(Grant).where(Grant.user_id == user.id)))
        identities = identities_of(user, grants)
        return identities, member_records(db.session, user, grants, ctx.purposes, ctx.peppers, identities, ctx.base_url)
    email = next((i.value for i in proven if i.kind == "email"), None)
    identities = optout_service.identities_in_scope(None, [], "all", email, proven)
    return identities, proof_records(db.session, ctx.peppers, identities)
