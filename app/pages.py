"""The start page."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask_login import current_user

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    if current_user.is_authenticated and current_user.role == "person":
        return redirect(url_for("consent_pages.me"))
    return render_template("index.html", networks=current_app.extensions["networks"])
