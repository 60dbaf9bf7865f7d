"""The opt-out pages: the form behind every "Opt out" link, and the live status of a request."""
from __future__ import annotations

import datetime as dt
import logging

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user

from app.auth import SESSION_VERSION
from app.db import utcnow
from app.extensions import db, limiter
from app.limits import account_key, signed_out
from app.mail import MailError
from app.models import User
from consent.service import consent_overview, grants_of
from erasure.context import context_from_app
from erasure.models import OptOutRequest, StepKind
from erasure.optout import mail_text, progress, service, wording
from erasure.optout.forms import OptOutForm, choices

bp = Blueprint("optout", __name__)
log = logging.getLogger(__name__)


@bp.route("/optout", methods=["GET", "POST"])
# Per account, never per address: on a shared address one person's leaving must not use up another's.
@limiter.limit("30 per hour", key_func=account_key, exempt_when=signed_out, methods=["POST"])
def optout():
    if not current_user.is_authenticated:
        ctx = context_from_app(current_app)
        late = _pressed_after_leaving(ctx) if request.method == "POST" else None
        if late is not None:
            return already_leaving(ctx, late)
        return current_app.login_manager.unauthorized()  # as @login_required answers
    if current_user.role != "person":
        abort(403, "Opting out is for people whose data the platform holds.")
    ctx = context_from_app(current_app)
    grants = grants_of(db.session, current_user.id)
    form = OptOutForm()
    scopes = [g.network for g in grants]
    if request.method == "POST":  # read after the grants: a scope whose grant just left is open here
        scopes += [s for s in service.open_scopes(db.session, current_user.id) if s != "all" and s not in scopes]
    form.scope.choices = choices([("all", "Everything: every network and my account")] + [
        (s, ctx.networks[s].name if s in ctx.networks else s) for s in scopes])
    if request.method == "GET":  # the page follows the choice: what goes, what stays, and the button's words
        asked = request.args.get("scope")
        form.scope.data = asked if asked in {c.value for c in form.scope.choices} else "all"
    if form.validate_on_submit():
        try:
            with db.writing():  # ends the read transaction: the write lock comes before any read
                service.lock(db.session, current_user.id)
                grants = grants_of(db.session, current_user.id)
                submitted = service.submit(
                    db.session, ctx, user=current_user._get_current_object(), grants=grants, scope=form.scope.data,
                    now=utcnow(), reason_code=form.reason.data or None, reason_text=form.reason_text.data,
                    show_opted_out=form.public_status.data == "yes")
        except service.OptOutError as exc:
            form.scope.errors.append(str(exc))
        except service.AlreadyLeaving as already:
            return already_leaving(ctx, already.request)
        else:
            status_url = ctx.base_url + submitted.status_path
            _mail_link(ctx, submitted, status_url)
            if submitted.request.scope == "all":
                logout_user()  # the account is closing; the status link needs no sign-in
            return redirect(submitted.status_path)
    manual = [(ctx.networks[g.network].name, ctx.networks[g.network].revocation.manual_url, g.network)
              for g in grants if g.network in ctx.networks and ctx.networks[g.network].revocation.style == "none"]
    chosen = form.scope.data if form.scope.data in {c.value for c in form.scope.choices} else "all"
    manual = [(name, url) for name, url, key in manual if chosen in ("all", key)]
    return render_template("optout.html", form=form, grants=grants, manual=manual, chosen=chosen,
                           network=ctx.networks[chosen].name if chosen in ctx.networks else chosen,
                           kept=_kept_after_leaving(ctx, chosen), deadline_days=ctx.deadline_days), \
        400 if form.errors else 200


def _kept_after_leaving(ctx, scope: str) -> list[str]:
    """What leaving `scope` cannot recall: the kept_after_leaving of each purpose the person ever agreed to
    (a consent withdrawn since still let data go out while it stood), each said once."""
    rows = consent_overview(db.session, current_user.id, ctx.purposes)
    texts = [ctx.purposes[r.purpose].kept_after_leaving for r in rows
             if r.purpose in ctx.purposes and scope in ("all", r.network)]
    return list(dict.fromkeys(t for t in texts if t))


LATE_PRESS = dt.timedelta(minutes=2)


def _pressed_after_leaving(ctx) -> OptOutRequest | None:
    """The open request of someone whose press of "Opt out now" came in after their first press had closed the
    account (a double click on a slow moment): that ended every session, this one's too, so the person would be
    sent to sign in to an account that is gone. Only a cookie from just before the leaving counts: its session
    version is the one the leaving raised by one, and the account closed moments ago."""
    user_id, version = session.get("_user_id"), session.get(SESSION_VERSION)
    if not isinstance(user_id, str) or not isinstance(version, int):
        return None
    user = db.session.get(User, user_id)
    if (user is None or user.closed_at is None or user.session_version != version + 1
            or utcnow() - user.closed_at > LATE_PRESS):
        return None
    return service.open_request(db.session, ctx.peppers, user=user, scope="all", identities=[])


def already_leaving(ctx, found: OptOutRequest):
    """The answer to a second submission while the first is open: what is under way, and where its link is.

    Not the status page itself: its link holds k, which is never stored, so only the first answer and
    the mail can carry it. Keeping it in the session cookie would not help where it matters: the
    presses of a double click are all sent with the cookie from before the first answer, and the
    browser shows the answer to the last one. So the person is told plainly, at once, that nothing new
    was started, how their request stands, and that the link is in the mail (or on the first page).
    """
    if found.scope == "all" and current_user.is_authenticated:
        logout_user()  # as the first answer did: the account is closing
    return render_template("optout_already.html", request=found, networks=ctx.networks, wording=wording,
                           mailed=any(s.kind == StepKind.NOTIFY for s in found.steps))


def _mail_link(ctx, submitted: service.Submitted, status_url: str) -> None:
    """Mailed at once: k is never stored, so it cannot be mailed later."""
    email = current_user.email if submitted.request.scope != "all" else _original_email(ctx, submitted)
    if not email:
        return
    try:
        ctx.mailer.send(email, *mail_text.submitted(submitted.request, status_url))
    except MailError:
        log.warning("opt-out %s: the status link could not be mailed", submitted.request.id)


def _original_email(ctx, submitted: service.Submitted) -> str | None:
    ids = service.open_identities(ctx, submitted.request)
    return ids.email if ids else None


NOT_FOUND = "There is no opt-out at this address. Check that the link is complete, as it was mailed to you."
# The status page's script sends k in this header, so that no address it asks for carries the capability.
KEY_HEADER = "X-Status-Key"


@bp.get("/optout/<request_id>")
def status(request_id: str):
    found = service.find_request(db.session, request_id, request.args.get("k"))
    if found is None:
        abort(404, NOT_FOUND)
    ctx = context_from_app(current_app)
    now = utcnow()
    response = current_app.make_response(render_template(
        "optout_status.html", request=found, steps=found.steps, networks=ctx.networks, now=now,
        groups=progress.groups(found.steps, ctx.networks, wording.store_kinds(ctx.datamap), now),
        counted_steps=progress.counted_steps(found.steps),
        wording=wording, kinds=wording.store_kinds(ctx.datamap), k=request.args.get("k"),
        status_url=ctx.base_url + url_for("optout.status", request_id=found.id, k=request.args.get("k")),
        mailed=any(s.kind == StepKind.NOTIFY for s in found.steps)))
    return _private(response)


@bp.get("/optout/<request_id>/progress")
def progress_json(request_id: str):
    """The status page's steps as JSON, for its script: k in the X-Status-Key header (or ?k=, as the page)."""
    found = service.find_request(db.session, request_id, request.headers.get(KEY_HEADER) or request.args.get("k"))
    if found is None:
        return _private(jsonify({"error": "not_found", "message": NOT_FOUND}), 404)
    ctx = context_from_app(current_app)
    return _private(jsonify(progress.as_json(found, found.steps, ctx.networks, wording.store_kinds(ctx.datamap),
                                             utcnow())))


def _private(response, status: int | None = None):
    """The link is a capability: keep it out of caches and out of Referer headers."""
    response = current_app.make_response(response if status is None else (response, status))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
