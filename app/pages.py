"""The start page and a person's own overview, /me."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, url_for
from flask_login import current_user, login_required

from app.extensions import db

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    if current_user.is_authenticated and current_user.role == "person":
        return redirect(url_for("pages.me"))
    return render_template("index.html", networks=current_app.extensions["networks"])


@bp.get("/me")
@login_required
def me():
    if current_user.role != "person":
        abort(403, "This page is for people with their own data here.")
    from consent import service as consent_service
    from erasure.stores.datamap import count_held, identities_of

    grants = consent_service.grants_of(db.session, current_user.id)
    consents = consent_service.consent_overview(db.session, current_user.id, current_app.extensions["purposes"])
    held = count_held(current_app.extensions["datamap"], identities_of(current_user, grants))
    return render_template(
        "me.html", grants=grants, consents=consents, held=held,
        networks=current_app.extensions["networks"],
    )
