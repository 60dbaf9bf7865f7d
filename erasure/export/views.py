"""The export downloads: GET /export for a signed-in person, GET /forget/export for a /forget proof.

The document is streamed as it is written (erasure/export/document.py), so memory stays bounded."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, flash, redirect, stream_with_context, url_for
from flask_login import current_user, login_required

from app.db import utcnow
from app.extensions import db
from consent.service import grants_of
from erasure.export.document import member_records, proof_records, stream_export
from erasure.forget import views as forget
from erasure.optout import service
from erasure.stores.datamap import Identities, identities_of

bp = Blueprint("export", __name__)
log = logging.getLogger(__name__)


@bp.get("/export")
@login_required
def export_mine():
    if current_user.role != "person":
        abort(403, "Export is for people whose data the platform holds.")
    app = current_app
    user = current_user._get_current_object()
    grants = grants_of(db.session, user.id)
    identities = identities_of(user, grants)
    records = member_records(db.session, user, grants, app.extensions["purposes"], app.extensions["ownstory_peppers"],
                             identities, app.config["BASE_URL"])
    log.info("export for user %s", user.id)
    return download(identities, records)


@bp.get("/forget/export")
def export_proven():
    proof = forget.current_proof()
    if proof is None:
        flash("First show that the account is yours; then you can download what is held about it.", "info")
        return redirect(url_for("forget.start"))
    identities = service.identities_in_scope(None, [], "all", proof.email, list(proof.identities))
    records = proof_records(db.session, current_app.extensions["ownstory_peppers"], identities)
    log.info("export for a proven %s identity", proof.via)
    return download(identities, records)


def download(identities: Identities, records: dict) -> Response:
    """The export as a streamed download, with no transaction held while the stores stream (a member's,
    a /forget proof's, or an authorized agent's one-time results link)."""
    now = utcnow()
    db.session.rollback()  # Ownstory's records are read: hold no transaction while the stores stream
    pieces = stream_export(current_app.extensions["datamap"], identities, records, now)
    response = Response(stream_with_context(pieces), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="ownstory-export-{now:%Y%m%d-%H%M%S}.json"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # a one-time link is not passed on
    return response
