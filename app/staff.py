"""The guard of staff pages: anonymous visitors are sent to sign in, any other role gets 403."""
from __future__ import annotations

from flask import Blueprint, abort, current_app
from flask_login import current_user

ROLE_WORDS = {"operator": "operators", "auditor": "auditors"}


def staff_only(bp: Blueprint, role: str) -> None:
    """Guard every view of `bp` for one role, before anything else of the blueprint runs."""

    @bp.before_request
    def _guard():
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # to /login?next=..., with a message
        if getattr(current_user, "role", None) != role:
            abort(403, f"These pages are for {ROLE_WORDS.get(role, role)} only.")
        return None
