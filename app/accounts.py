"""Sign up, sign in and sign out for people (and staff accounts made with `flask users create`)."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from app import audit
from app.auth import passwords
from app.db import utcnow
from app.extensions import db, limiter
from app.models import User

bp = Blueprint("accounts", __name__)
log = logging.getLogger(__name__)

MIN_PASSWORD = 10


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
    """Only local paths: `next` must never become an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _start_session(user: User) -> None:
    session.clear()  # a new session on every sign-in: no fixation
    login_user(user)
    user.last_login_at = utcnow()
    db.session.commit()


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("10 per minute; 50 per hour", methods=["POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("consent_pages.me"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = create_user(db.session, form.email.data, form.password.data)
        except ValueError:
            form.email.errors.append("An account with this email exists. Sign in instead.")
        else:
            audit.record(db.session, actor_kind="person", actor_id=user.id, action="signup", now=utcnow())
            db.session.commit()
            log.info("person signed up: user %s", user.id)
            _start_session(user)
            flash("Welcome. Nothing is shared until you choose to.", "success")
            return redirect(url_for("consent_pages.me"))
    return render_template("signup.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute; 100 per hour", methods=["POST"])
def login():
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.email == normalize_email(form.email.data)))
        if user is None:
            passwords().dummy_verify()
        elif passwords().verify(user.password_hash, form.password.data):
            _start_session(user)
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
    audit.record_now(**audit.actor_of(current_user), action="logout")
    logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("pages.index"))
