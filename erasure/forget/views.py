"""/forget: opting out without an account, after proving control of a network account or an email address.

No Ownstory account is made. What was proven is held in the visitor's signed session for PROOF_TTL,
and then the member's opt-out runs for those identities: the same submit, status page and receipt.
"""
from __future__ import annotations

import logging
import re

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, session, url_for
from flask_wtf import FlaskForm
from wtforms import EmailField
from wtforms.validators import DataRequired, Email, Length

from app import logging as app_logging
from app.accounts import address_key, normalize_email
from app.db import utcnow
from app.extensions import db, limiter
from app.limits import private_key
from app.mail import MailError
from consent import account_control
from consent.suppression import Identity
from erasure.context import context_from_app
from erasure.forget import control, network_proof
from erasure.optout import mail_text, service
from erasure.optout.forms import OptOutForm
from erasure.optout.views import already_leaving

bp = Blueprint("forget", __name__)
log = logging.getLogger(__name__)

PENDING = "forget_oauth"  # session key: {network key: {"state": ..., "verifier": ...}}
# The redirect URI to register with the network for /forget, beside /networks/<key>/callback.
CONTROL = account_control.AccountControl(PENDING, "/forget/networks/{key}/callback", back_to="forget.start")
PROOF = "forget_proof"  # session key: control.ForgetProof.to_session()


def init_app(app: Flask) -> None:
    """Keep the one-time link's token out of the access logs (werkzeug's, and Ownstory's own)."""
    RedactEmailLinks.install()


class RedactEmailLinks(app_logging.RedactMatches):
    """The one-time link's token is in its path, and access logs print paths."""

    PATTERN = re.compile(r"(/forget/email/)[^\s?\"/]+")


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class EmailForm(FlaskForm):
    email = EmailField("Your email address", filters=[_strip],
                       validators=[DataRequired(), Email(), Length(max=320)])


class ConfirmForm(FlaskForm):
    """Only the CSRF token: spending a link takes a POST from our own page."""


class ForgetOptOutForm(OptOutForm):
    # Everything about the proven account: there is nothing else to choose. None is WTForms' way
    # to drop an inherited field; its stubs cannot say so.
    scope = None  # type: ignore[assignment]


# --- the start page ----------------------------------------------------------------------------

@bp.get("/forget")
def start():
    return render_template("forget.html", networks=current_app.extensions["networks"], form=EmailForm(),
                           proof=current_proof(), what=_describe(current_proof()))


# --- proving a network account with OAuth ------------------------------------------------------

@bp.post("/forget/networks/<key>")
@limiter.limit("20 per hour", methods=["POST"])
def start_network(key: str):
    return redirect(CONTROL.start(CONTROL.network(key)), code=303)


@bp.get("/forget/networks/<key>/callback")
def network_callback(key: str):
    network = CONTROL.network(key)
    try:
        proven = CONTROL.finish(network)
    except account_control.ControlError as exc:
        failed = network_proof.failure(network, exc)
        log.info("forget: no proof of a %s account: %s", key, failed.reason)
        if failed.start_over:
            abort(400, f"{failed.message} Start again from the Leave page.")
        return CONTROL.back(failed.message, "info" if failed.chose else "error")
    network_proof.discard(network, proven.token, proven.account_id)
    identities = network_proof.identities(network, proven)
    session[PROOF] = control.new_proof(identities, network.key, utcnow()).to_session()
    log.info("forget: control of a %s account was proven", network.key)
    return redirect(url_for("forget.optout"), code=303)


# --- proving an email address with a one-time link ---------------------------------------------

@bp.post("/forget/email")
@limiter.limit("10 per hour", methods=["POST"])
@limiter.limit("3 per hour", key_func=lambda: address_key("forget-address"), methods=["POST"])
def email():
    form = EmailForm()
    if not form.validate_on_submit():
        return render_template("forget.html", networks=current_app.extensions["networks"], form=form,
                               proof=current_proof(), what=_describe(current_proof())), 400
    address = normalize_email(form.email.data)
    with db.writing():
        token = control.new_email_link(db.session, address, utcnow())
    # Mailed whether or not anyone here knows the address: the answer and its timing are the same.
    link = f"{current_app.config['BASE_URL']}/forget/email/{token}"
    try:
        current_app.extensions["ownstory_mailer"].send(address, *_link_mail(link))
    except MailError:
        log.warning("forget: an email link could not be mailed")
    return render_template("forget_email_sent.html", minutes=int(control.LINK_TTL.total_seconds() // 60))


def _link_mail(link: str) -> tuple[str, str]:
    minutes = int(control.LINK_TTL.total_seconds() // 60)
    return "Your link to leave the platform", f"""Someone, we hope you, asked to leave the platform with this address.

Open this link within {minutes} minutes to continue. It works once:
{link}

Opening it changes nothing by itself: you confirm on the page, then choose what happens.
If you did not ask, ignore this mail and nothing happens.
"""


@bp.get("/forget/email/<token>")
def email_link(token: str):
    """Only shows the confirmation: a mail scanner that follows the link spends nothing."""
    if not control.link_usable(db.session, token, utcnow()):
        return _private(render_template("forget_link_spent.html"), 400)
    return _private(render_template("forget_email_confirm.html", form=ConfirmForm()))


@bp.post("/forget/email/<token>")
@limiter.limit("20 per hour", methods=["POST"])
def use_email_link(token: str):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "This form has expired. Open the link from your mail again.")
    with db.writing():
        address = control.use_email_link(db.session, token, utcnow())
    if address is None:
        return _private(render_template("forget_link_spent.html"), 400)
    session[PROOF] = control.new_proof([Identity("email", address)], "email", utcnow()).to_session()
    log.info("forget: control of an email address was proven")
    return redirect(url_for("forget.optout"), code=303)


def _private(body: str, status: int = 200):
    response = current_app.make_response((body, status))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response


# --- the opt-out, as a member's ----------------------------------------------------------------

def _proof_key() -> str:
    """The opt-out's rate limit key: what was proven, as an HMAC. Leaving is never limited per client
    address (on a shared address one person's leaving must not use up another's); proving is."""
    proof = current_proof()
    held = "|".join(sorted(f"{i.kind}:{i.network or ''}:{i.value}" for i in proof.identities)) if proof else ""
    return private_key("forget-proof", held)


@bp.route("/forget/optout", methods=["GET", "POST"])
@limiter.limit("30 per hour", key_func=_proof_key, exempt_when=lambda: current_proof() is None, methods=["POST"])
def optout():
    proof = current_proof()
    if proof is None:
        flash("Please show again that the account is yours: that proof lasts "
              f"{int(control.PROOF_TTL.total_seconds() // 60)} minutes.", "info")
        return redirect(url_for("forget.start"))
    ctx = context_from_app(current_app)
    form = ForgetOptOutForm()
    if form.validate_on_submit():
        try:
            with db.writing():
                service.lock(db.session)
                submitted = service.submit(
                    db.session, ctx, user=None, grants=[], scope="all", now=utcnow(), email=proof.email,
                    given=list(proof.identities), source="forget", reason_code=form.reason.data or None,
                    reason_text=form.reason_text.data, show_opted_out=form.public_status.data == "yes")
        except service.OptOutError as exc:
            form.reason.errors.append(str(exc))
        except service.AlreadyLeaving as already:
            session.pop(PROOF, None)
            return already_leaving(ctx, already.request)
        else:
            session.pop(PROOF, None)
            _mail_link(ctx, submitted, proof)
            return redirect(submitted.status_path)
    return render_template("forget_optout.html", form=form, what=_describe(proof),
                           deadline_days=ctx.deadline_days), 400 if form.errors else 200


def _mail_link(ctx, submitted: service.Submitted, proof: control.ForgetProof) -> None:
    if proof.email is None:
        flash("Keep the address of this page: we have no email address to send it to, "
              "and it is the only way to follow your request and reach its receipt.", "info")
        return
    try:
        ctx.mailer.send(proof.email, *mail_text.submitted(submitted.request, ctx.base_url + submitted.status_path))
    except MailError:
        log.warning("opt-out %s: the status link could not be mailed", submitted.request.id)


def current_proof() -> control.ForgetProof | None:
    """The visitor's proof, while it is valid (the export reads it too)."""
    raw = session.get(PROOF)
    return control.proof_from_session(raw, utcnow()) if raw else None


def _describe(proof: control.ForgetProof | None) -> str:
    if proof is None:
        return ""
    if proof.via == "email":
        return f"the email address {proof.email}"
    networks = current_app.extensions["networks"]
    name = networks[proof.via].name if proof.via in networks else proof.via
    account = next((i.value for i in proof.identities if i.kind == "account"), "")
    handle = next((i.value for i in proof.identities if i.kind == "handle"), None)
    return f"your {name} account " + (f"@{handle} (id {account})" if handle else f"with the id {account}")
