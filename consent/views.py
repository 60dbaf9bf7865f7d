"""A person's own pages: /me, their overview, and /consents, where they give and withdraw consent."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.db import utcnow
from app.extensions import db
from app.models import User
from consent import service
from consent.expiry import has_expired_for_good
from consent.models import Grant

bp = Blueprint("consent_pages", __name__)
log = logging.getLogger(__name__)
PREFIX = "consent:"
HELD = "ownstory_held_counter"  # app.extensions' counter of the data held about a person, for /me

CountHeld = Callable[[User, Sequence[Grant]], list]


def register_held_counter(app: Flask, count: CountHeld) -> None:
    """What counts the rows the platform holds about a person, for /me: `count(user, grants)` gives objects
    with `store`, `category` and `rows` (None when a store could not be counted). Erasure registers its data
    map's count here, so that consent, which erasure builds on, never imports erasure."""
    app.extensions[HELD] = count


@bp.get("/me")
@login_required
def me():
    if current_user.role != "person":
        abort(403, "This page is for people with their own data here.")
    grants = service.grants_of(db.session, current_user.id)
    consents = service.consent_overview(db.session, current_user.id, current_app.extensions["purposes"])
    count_held = current_app.extensions.get(HELD)
    held = _by_category(count_held(current_user, grants)) if count_held else []
    now = utcnow()
    return render_template(
        "me.html", grants=grants, consents=consents, held=held,
        networks=current_app.extensions["networks"],
        expired={g.id for g in grants if has_expired_for_good(g, now)},
    )


def _by_category(counts: list) -> list[tuple[str, int | None]]:
    """What a person reads on /me: each category once, whichever stores hold it (which store is the
    operator's concern, and the export's); None when a store holding it could not be counted just now."""
    totals: dict[str, int | None] = {}
    for c in counts:
        before = totals.get(c.category, 0)
        totals[c.category] = None if before is None or c.rows is None else before + c.rows
    return list(totals.items())


@bp.route("/consents", methods=["GET", "POST"])
@login_required
def consents():
    if current_user.role != "person":
        abort(403, "This page is for people with their own data here.")
    user_id = current_user.id
    purposes = current_app.extensions["purposes"]
    connected = list(dict.fromkeys(g.network for g in service.grants_of(db.session, user_id)))
    if request.method == "POST":
        wanted = _wanted(request.form.keys(), connected, purposes)
        with db.writing():  # ends this request's read transaction: SQLite's write lock comes first
            changes = service.set_consents(db.session, user_id, wanted, purposes, set(connected), utcnow())
        log.info("consents saved: user %s, %d change(s)", user_id, len(changes))
        flash(_summary(changes), "success")
        return redirect(url_for("consent_pages.consents"))
    rows = {(r.network, r.purpose): r for r in service.consent_overview(db.session, user_id, purposes)}
    return render_template("consents.html", connected=connected, purposes=purposes, rows=rows,
                           networks=current_app.extensions["networks"])


def _wanted(names, connected: list[str], purposes) -> set[tuple[str, str]]:
    """The ticked boxes as (network, purpose). Any box we did not offer refuses the whole form."""
    wanted = set()
    for name in names:
        if not name.startswith(PREFIX):
            continue  # csrf_token and the like
        network, _, purpose = name[len(PREFIX):].rpartition(":")
        if network not in connected or purpose not in purposes:
            abort(400, "The form asked for a consent we do not offer you (a network you have not connected, "
                       "or an unknown purpose). Nothing was changed; please reload the page and try again.")
        wanted.add((network, purpose))
    return wanted


def _summary(changes: list[service.Change]) -> str:
    given = sum(c.action == "grant" for c in changes)
    withdrawn = len(changes) - given
    if not changes:
        return "Nothing changed: your consents are as they were."
    parts = [f"gave {given} consent{'s' * (given != 1)}"] if given else []
    parts += [f"withdrew {withdrawn} consent{'s' * (withdrawn != 1)}"] if withdrawn else []
    return "Saved: you " + " and ".join(parts) + "."
