"""Sign up, sign in and sign out for people (and staff accounts made with `flask users create`)."""
from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from app import audit
from app.auth import SESSION_VERSION, passwords
from app.db import utcnow
from app.extensions import db, limiter
from app.limits import private_key
from app.mail import MailError
from app.models import User

bp = Blueprint("accounts", __name__)
log = logging.getLogger(__name__)

MIN_PASSWORD = 10
# Failed sign-ins to one account, from any address: guessing is bounded however many addresses it comes from.
# Counted the same for an address with no account, so being limited says nothing about which addresses exist.
ACCOUNT_SIGNIN_LIMIT = "10 per 15 minutes; 100 per day"
# Sign-ups naming one address: each mails its owner when the address has an account, so at most this many.
ADDRESS_SIGNUP_LIMIT = "3 per hour"
CONTROL = re.compile(r"[\x00-\x20\x7f]")  # control characters and spaces have no place in a local path


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class SignupForm(FlaskForm):
    email = EmailField("Email", filters=[_strip], validators=[DataRequired(), Email(), Length(max=320)])
    password = PasswordField("Password", validators=[
        DataRequired(), Length(min=MIN_PASSWORD, max=1000, message=f"Use at least {MIN_PASSWORD} characters.")])


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[_strip], validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    next = HiddenField()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(session_, email: str, password: str, role: str = "person") -> User:
    """Make an account. Raises ValueError if the email is taken."""
    user = User(email=normalize_email(email), password_hash=passwords().hash(password), role=role)
    session_.add(user)
    try:
        session_.flush()
    except IntegrityError:
        session_.rollback()
        raise ValueError("an account with that email exists") from None
    return user


def safe_next(target: str | None) -> str | None:
    """Only local paths: `next` must never become an open redirect.

    What is returned is what was checked, rebuilt from its parts: never the raw string, which
    urlsplit would have read past (it drops tabs and line breaks), and which a Location header refuses.
    """
    if not target or CONTROL.search(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    checked = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    return checked if checked.startswith("/") and not checked.startswith("//") else None


def _start_session(user: User) -> bool:
    """Sign the person in on a new session. False if the account changed or went while the password was checked.

    The sign-in read the account in a read transaction; on SQLite that transaction cannot safely
    become a writer while others write, so it ends and the write takes the lock first.
    """
    with db.writing():
        version = db.session.scalar(select(User.session_version).where(
            User.id == user.id, User.password_hash == user.password_hash))
        if version is None:
            return False
        db.session.execute(update(User).where(User.id == user.id).values(last_login_at=utcnow()))
    session.clear()  # a new session on every sign-in: no fixation
    login_user(user)
    session[SESSION_VERSION] = version  # sign-out and leaving raise the account's: this cookie then opens nothing
    return True


def address_key(prefix: str) -> str:
    """A rate limit's key for the address in the form. Any text keys a limit, whether or not an account has
    the address."""
    return private_key(prefix, normalize_email(request.form.get("email", ""))[:320])


def _signin_account_key() -> str:
    return address_key("signin-account")


def _signup_address_key() -> str:
    return address_key("signup-address")


def _failed_signin(response) -> bool:
    return response.status_code != 302


def _signup_tried(_response) -> bool:
    """Only a sign-up that named a valid address and password counts: a typo in the form costs nothing."""
    return bool(g.get("signup_tried"))


def _tell_the_owner(address: str) -> None:
    """Someone tried to sign up with an address that has an account: its owner hears of it, whoever they are."""
    base = current_app.config["BASE_URL"]
    body = f"""Someone tried to sign up to Ownstory with this email address, which already has an account.

If it was you, sign in instead: {base}{url_for("accounts.login")}
Ownstory has no password reset. If you no longer know your password, you can still leave, and have
your data removed, without signing in: {base}/forget

If it was not you, you need do nothing: no account was made or changed, and nobody was signed in.
"""
    try:
        current_app.extensions["ownstory_mailer"].send(address, "Someone tried to sign up with your address", body)
    except MailError:
        log.warning("sign-up: the note to an existing account could not be mailed")


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("10 per minute; 50 per hour", methods=["POST"])
@limiter.limit(ADDRESS_SIGNUP_LIMIT, key_func=_signup_address_key, methods=["POST"], deduct_when=_signup_tried,
               error_message="Too many sign-ups with this email address this hour. Nothing was made or changed; "
                             "try again in an hour, or sign in if the address already has an account.")
def signup():
    """Sign up, and land on My data signed in. An address that has an account is refused, and its owner mailed.

    The refusal does say that the address has an account (a person's or staff's alike, never which):
    a sign-up that signs in at once cannot look the same for a taken address. The README says why.
    """
    if current_user.is_authenticated:
        return redirect(url_for("consent_pages.me"))
    form = SignupForm()
    if form.validate_on_submit():
        g.signup_tried = True
        try:
            with db.writing():  # the write lock first: the insert and the audit entry wait for it, never fail
                user = create_user(db.session, form.email.data, form.password.data)
                audit.record(db.session, actor_kind="person", actor_id=user.id, action="signup", now=utcnow())
        except ValueError:
            _tell_the_owner(normalize_email(form.email.data))
            form.email.errors.append("This address already has an account. If it is yours, sign in instead; "
                                     "we have mailed the address to say that someone tried to sign up with it.")
        else:
            log.info("person signed up: user %s", user.id)
            _start_session(user)
            flash("Welcome. Nothing is shared until you choose to.", "success")
            return redirect(url_for("consent_pages.me"))
    return render_template("signup.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute; 100 per hour", methods=["POST"])
@limiter.limit(ACCOUNT_SIGNIN_LIMIT, key_func=_signin_account_key, methods=["POST"], deduct_when=_failed_signin,
               error_message="Too many failed sign-ins for this email address. Nothing was changed. Try again "
                             "in 15 minutes (after 100 in a day, tomorrow).")
def login():
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.email == normalize_email(form.email.data)))
        if user is None:
            passwords().dummy_verify()
        elif passwords().verify(user.password_hash, form.password.data) and _start_session(user):
            audit.record_now(actor_kind=user.role, actor_id=user.id, action="login")
            log.info("signed in: user %s", user.id)
            default = url_for("consent_pages.me") if user.role == "person" else url_for("pages.index")
            return redirect(safe_next(form.next.data) or default)
        log.info("failed sign-in")
        audit.record_now(actor_kind="anonymous", actor_id=None, action="login_failed", target=user and user.id,
                         outcome="refused", details={"reason": "unknown_account" if user is None else "wrong_password"})
        form.password.errors.append("That email and password do not match an account.")
    return render_template("login.html", form=form), 400 if form.errors else 200


@bp.post("/logout")
@login_required
def logout():
    user_id = current_user.id
    audit.record_now(**audit.actor_of(current_user), action="logout")
    with db.writing():  # every copy of this session's cookie stops opening anything
        db.session.execute(update(User).where(User.id == user_id).values(session_version=User.session_version + 1))
    logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("pages.index"))
