"""An agent's Data Rights Requests: each exercise becomes Ownstory's own work, and its status is told in DRP's terms.

- `deletion` is an opt-out of everything, on the person's behalf (erasure.optout.behalf): the same steps,
  deadline and receipt as anyone's; it is `fulfilled` when the receipt is signed, with the receipt as results_url.
- `sale:opt-out` withdraws the person's consents to every purpose marked `sale` in purposes.toml, and
  `sale:opt-in` gives them again on every network the person connected, as ledger events (method "drp").
- `access` is the export, delivered once through a results_url that works for RESULTS_TTL.

A request whose claims the agent did not verify waits in in_progress/need_user_verification until the person
proves control of the address or the network account themselves (erasure.agents.views), or is denied
insuf_verification.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.mail import MailError
from app.models import User
from app.text import b64url, iso_utc
from consent import ledger
from consent.models import ConsentState, Grant
from consent.suppression import Identity
from erasure.agents import callbacks
from erasure.agents.claims import Claims, Exercise
from erasure.agents.models import FINAL, AgentRequest, AuthorizedAgent
from erasure.context import ErasureContext
from erasure.models import OptOutRequest, RequestStatus
from erasure.optout import behalf, mail_text, service

log = logging.getLogger(__name__)

RESULTS_TTL = dt.timedelta(days=7)  # how long an access request's results_url works (once)
VERIFY_TTL = dt.timedelta(days=7)  # how long a request waits for the person's own proof of control
CONSENT_METHOD = "drp"
RESULTS_LABEL = b"ownstory drp results"


@dataclass(frozen=True)
class Desk:
    """What the agents' service needs from the configured app."""

    ctx: ErasureContext
    business_id: str
    link_key: bytes  # derives each access request's results_url token (OWNSTORY_SECRET_KEY)

    def results_token(self, request_id: str) -> str:
        return b64url(hmac.new(self.link_key, RESULTS_LABEL + request_id.encode(), hashlib.sha256).digest())

    def results_url(self, request_id: str) -> str:
        return f"{self.ctx.base_url}/drp/results/{request_id}/{self.results_token(request_id)}"


class NotRevocable(Exception):
    """Something irreversible has run already; the message says what."""


# --- the Exercise Status object (section 3.03) -------------------------------------------------

def status_of(desk: Desk, request: AgentRequest, capabilities: bool = True) -> dict:
    """The Exercise Status. Without `capabilities`, an access request's results_url is left out: a status
    stored to be sent later holds no link that opens the export (capability_links adds it when sending)."""
    body: dict = {"request_id": request.id, "status": request.status,
                  "received_at": iso_utc(request.received_at), "expected_by": iso_utc(request.expected_by)}
    if request.reason:
        body["reason"] = request.reason
    if request.agent_request_id is not None:
        body["agent_request_id"] = request.agent_request_id
    if request.processing_details:
        body["processing_details"] = request.processing_details
    if request.reason == "need_user_verification" and request.verify_until is not None:
        body["user_verification_url"] = f"{desk.ctx.base_url}/drp/verify/{request.id}"
        body["expires_at"] = iso_utc(request.verify_until)
    if request.status == "fulfilled":
        results = _results_url(desk, request) if capabilities or request.exercise != "access" else None
        if results:
            body["results_url"] = results
        if request.results_expires_at is not None:
            body["expires_at"] = iso_utc(request.results_expires_at)
    return body


def _results_url(desk: Desk, request: AgentRequest) -> str | None:
    if request.exercise == "access":
        return desk.results_url(request.id) if request.results_used_at is None else None
    if request.exercise == "deletion" and request.optout_request_id:
        receipt_id = request.optout_request.receipt_id if request.optout_request else None
        return f"{desk.ctx.base_url}/receipts/{receipt_id}" if receipt_id else None
    return None


def capability_links(desk: Desk, request: AgentRequest) -> dict:
    """What status_of(capabilities=False) left out, as it stands now."""
    results = _results_url(desk, request) if request.status == "fulfilled" and request.exercise == "access" else None
    return {"results_url": results} if results else {}


def change(desk: Desk, session: Session, request: AgentRequest, now: dt.datetime, status: str,
           reason: str | None = None, details: str | None = None) -> None:
    """Move the request to a new state, and queue its status callback. The caller commits."""
    if (request.status, request.reason, request.processing_details) == (status, reason, details):
        return
    request.status, request.reason, request.processing_details, request.updated_at = status, reason, details, now
    if status in FINAL and not (request.exercise == "access" and status == "fulfilled"):
        request.claims_sealed = None  # nothing more to match: what named the person goes
    session.flush()
    if request.status_callback:
        callbacks.queue(session, request.id, status_of(desk, request, capabilities=False), now)
    log.info("drp request %s of agent %s: %s%s", request.id, request.agent_id, status, f"/{reason}" if reason else "")


# --- exercising a right ---------------------------------------------------------------------------

def exercise(desk: Desk, session: Session, agent: AuthorizedAgent, asked: Exercise, now: dt.datetime) -> AgentRequest:
    """Record the request and act on it as far as its claims allow. Call under writing(); the caller commits."""
    request = AgentRequest(
        id=str(uuid.uuid4()), agent_id=agent.id, agent_request_id=asked.agent_request_id, exercise=asked.exercise,
        regime=asked.regime, status="open", status_callback=asked.status_callback, received_at=now,
        expected_by=now + dt.timedelta(days=desk.ctx.deadline_days), updated_at=now,
        claims_sealed=desk.ctx.vault.seal(asked.claims.to_json()))
    session.add(request)
    session.flush()
    claims = asked.claims
    if not claims.verified and not claims.unverified:
        change(desk, session, request, now, "denied", "no_match",
               "No email address or network account to match: Ownstory holds no other identifiers.")
    elif claims.verified:
        ignored = " Claims the agent did not verify were left out." if claims.unverified else ""
        carry_out(desk, session, request, list(claims.verified), now, ignored)
    else:
        request.verify_until = now + VERIFY_TTL
        change(desk, session, request, now, "in_progress", "need_user_verification", _to_prove(claims))
    return request


def _to_prove(claims: Claims) -> str:
    """What the person is asked to prove, told to the agent."""
    if not claims.unverified_networks:
        return "The email address is not verified: the person confirms it at user_verification_url."
    if claims.unverified_email is None:
        return ("The network account is not verified: the person proves it is theirs at user_verification_url, "
                "signing in at the network.")
    return ("The email address and the network account are not verified: the person proves either at "
            "user_verification_url.")


def carry_out(desk: Desk, session: Session, request: AgentRequest, identities: list[Identity], now: dt.datetime,
              note: str = "") -> None:
    """Do what the request asks for these (verified) identities."""
    request.verify_until = None
    request.claims_sealed = None  # the opt-out holds what it needs; an access request keeps the verified ones
    if request.exercise == "deletion":
        _delete(desk, session, request, identities, now, note)
    elif request.exercise == "access":
        request.claims_sealed = desk.ctx.vault.seal(Claims(tuple(identities)).to_json())
        request.results_expires_at = now + RESULTS_TTL
        change(desk, session, request, now, "fulfilled", None,
               ("The export of everything held is at results_url: it works once." + note).strip())
    else:
        _sale(desk, session, request, identities, now, note)


def _delete(desk: Desk, session: Session, request: AgentRequest, identities: list[Identity], now: dt.datetime,
            note: str) -> None:
    service.lock(session)
    try:
        with session.begin_nested():
            submitted, _user = behalf.submit_on_behalf(session, desk.ctx, identities, now, source="agent")
    except behalf.SeveralOwners as exc:
        change(desk, session, request, now, "denied", "other", str(exc))
        return
    except service.AlreadyLeaving as already:  # the same wish, already under way: follow that opt-out
        request.optout_request_id = already.request.id
        request.expected_by = already.request.deadline
        change(desk, session, request, now, "in_progress", None,
               ("This person's deletion was already under way; this request follows it." + note).strip())
        return
    optout = submitted.request
    request.optout_request_id, request.expected_by = optout.id, optout.deadline
    change(desk, session, request, now, "in_progress", None,
           ("Consent stopped at once; access is being revoked and data deleted, with a signed receipt." + note).strip())
    contact = service.open_contact(desk.ctx, optout)
    if contact:  # the person's own link to the status page, and so to the receipt's owner proof
        try:
            desk.ctx.mailer.send(contact, *mail_text.submitted(optout, desk.ctx.base_url + submitted.status_path))
        except MailError:
            log.warning("drp request %s: the status link could not be mailed", request.id)


def _sale(desk: Desk, session: Session, request: AgentRequest, identities: list[Identity], now: dt.datetime,
          note: str) -> None:
    try:
        user = behalf.owner_of(session, identities)
    except behalf.SeveralOwners as exc:
        change(desk, session, request, now, "denied", "other", str(exc))
        return
    if user is None:
        change(desk, session, request, now, "denied", "no_match", "No account here matches these identities.")
        return
    keys = [p for p, purpose in desk.ctx.purposes.items() if purpose.sale]
    if request.exercise == "sale:opt-out":
        count = withdraw_sale(session, user, keys, now)
        done = f"Withdrew {count} consent{'s' if count != 1 else ''} to sale or sharing."
    else:
        count = grant_sale(session, user, keys, desk, now)
        done = f"Recorded {count} consent{'s' if count != 1 else ''} to sale or sharing."
    change(desk, session, request, now, "fulfilled", None, (done + note).strip())


def withdraw_sale(session: Session, user: User, keys: list[str], now: dt.datetime) -> int:
    granted = list(session.scalars(select(ConsentState).where(
        ConsentState.subject_id == user.id, ConsentState.purpose.in_(keys), ConsentState.status == "granted")
        .order_by(ConsentState.network, ConsentState.purpose)))
    for s in granted:
        ledger.append(session, user.id, s.network, s.purpose, s.version, "withdraw", CONSENT_METHOD, now)
    return len(granted)


def grant_sale(session: Session, user: User, keys: list[str], desk: Desk, now: dt.datetime) -> int:
    """Consent again, at the current version, on every network the person connected."""
    networks = sorted(set(session.scalars(select(Grant.network).where(Grant.user_id == user.id))))
    states = {(s.network, s.purpose): s for s in session.scalars(
        select(ConsentState).where(ConsentState.subject_id == user.id))}
    count = 0
    for network in networks:
        for key in keys:
            version = desk.ctx.purposes[key].version
            state = states.get((network, key))
            if state is None or state.status != "granted" or state.version != version:
                ledger.append(session, user.id, network, key, version, "grant", CONSENT_METHOD, now)
                count += 1
    return count


# --- reading, revoking, keeping the status current ------------------------------------------------

def find(session: Session, request_id: str, lock: bool = False) -> AgentRequest | None:
    """The request; with `lock`, read afresh and, on PostgreSQL, locked (FOR UPDATE) until the caller commits:
    what a write decides from, not what an earlier read of the same session left in its identity map."""
    try:
        if str(uuid.UUID(request_id)) != request_id:
            return None
    except ValueError:
        return None
    return session.get(AgentRequest, request_id, populate_existing=lock, with_for_update=lock or None)


@dataclass(frozen=True)
class Due:
    """A change refresh() would make: a new state, or (status None) only the used export's claims to drop."""

    status: str | None
    reason: str | None = None
    details: str | None = None


def due(session: Session, request: AgentRequest, now: dt.datetime) -> Due | None:
    """What the stored status lacks of the work it stands for, read only; None when it is up to date. A
    status read takes the write lock only when this is not None (refresh() then looks again under it)."""
    found = _due(session, request, now)
    if found is None or found.status is None:
        return found
    return None if (request.status, request.reason, request.processing_details) == (
        found.status, found.reason, found.details) else found


def _due(session: Session, request: AgentRequest, now: dt.datetime) -> Due | None:
    if request.status in FINAL and not (request.exercise == "access" and request.status == "fulfilled"):
        return None
    if request.reason == "need_user_verification" and request.verify_until and now >= request.verify_until:
        return Due("denied", "insuf_verification", "The person did not prove control in time.")
    if request.exercise == "access" and request.status == "fulfilled":
        if request.results_used_at is not None and request.claims_sealed is not None:
            return Due(None)
        if request.results_expires_at is not None and now >= request.results_expires_at:
            return Due("expired", None, "The results were not fetched in time.")
    elif request.exercise == "deletion" and request.optout_request_id:
        optout = session.get(OptOutRequest, request.optout_request_id)
        if optout is not None and optout.status == RequestStatus.COMPLETED and optout.receipt_id:
            return Due("fulfilled", None, "Access revoked and data deleted: the signed receipt is at results_url.")
        if optout is not None and optout.status == RequestStatus.NEEDS_ATTENTION:
            return Due("in_progress", None, "Some steps are being retried; the deadline holds.")
    return None


def refresh(desk: Desk, session: Session, request: AgentRequest, now: dt.datetime) -> None:
    """Bring the stored status up to date with the work it stands for. The caller commits."""
    found = due(session, request, now)
    if found is None:
        return
    if found.status is None:
        request.claims_sealed = None
    else:
        change(desk, session, request, now, found.status, found.reason, found.details)


def still_open():
    """The requests whose status can still change by itself: in progress, or an access export not yet fetched."""
    unfetched = and_(AgentRequest.exercise == "access", AgentRequest.status == "fulfilled",
                     AgentRequest.claims_sealed.is_not(None))
    return or_(AgentRequest.status == "in_progress", unfetched)


def refresh_open(desk: Desk, session: Session, now: dt.datetime, limit: int = 200) -> int:
    """refresh() the requests whose status can still change by itself, oldest change first. The caller commits."""
    # Locked, skipping those another worker's tick or an agent's poll is refreshing: each change is made, and
    # its callback queued, once.
    waiting = list(session.scalars(select(AgentRequest).where(still_open())
                                   .order_by(AgentRequest.updated_at).limit(limit)
                                   .with_for_update(skip_locked=True)))
    for request in waiting:
        refresh(desk, session, request, now)
    return len(waiting)


def revoke(desk: Desk, session: Session, request: AgentRequest, reason: str | None, now: dt.datetime) -> None:
    """DRP 2.04: allowed only while nothing irreversible has run. Raises NotRevocable. The caller commits."""
    if request.status == "revoked":
        return
    if request.status in FINAL:
        raise NotRevocable(f"The request is already {request.status}: there is nothing left to revoke.")
    if request.optout_request_id is not None:
        raise NotRevocable("The deletion has started: consent was withdrawn and access is being revoked, "
                           "which cannot be undone. The request will be fulfilled.")
    details = f"Revoked by the agent: {reason.strip()[:500]}" if reason and reason.strip() else "Revoked by the agent."
    request.verify_until = None
    change(desk, session, request, now, "revoked", None, details)


def open_claims(desk: Desk, request: AgentRequest) -> Claims | None:
    if request.claims_sealed is None:
        return None
    return Claims.from_json(desk.ctx.vault.open(request.claims_sealed))


def agent_of_optout(session: Session, optout_request_id: str) -> str | None:
    """The agent a deletion came through, if it came through one: the receipt page names the channel."""
    return session.scalar(select(AgentRequest.agent_id).where(AgentRequest.optout_request_id == optout_request_id)
                          .order_by(AgentRequest.received_at).limit(1))
