"""Liveness and readiness probes for load balancers and orchestrators."""
from __future__ import annotations

import logging

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.migrate import alembic_config

bp = Blueprint("health", __name__)
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)  # a probe a second would flood the log


def _script_heads() -> set[str]:
    """The migrations this code expects, read from disk once per process."""
    if "ownstory_script_heads" not in current_app.extensions:
        script = ScriptDirectory.from_config(alembic_config(current_app.config["DATABASE_URL"]))
        current_app.extensions["ownstory_script_heads"] = set(script.get_heads())
    return current_app.extensions["ownstory_script_heads"]


def _keys_usable() -> bool:
    """The signing keys in use open with the configured OWNSTORY_TOKEN_KEYS (none yet is fine: made on need)."""
    from app.security import VaultError
    from erasure.models import SigningKey
    from erasure.receipts import keys

    vault = current_app.extensions["ownstory_vault"]
    try:
        for row in db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
            keys.private_key(vault, row)
    except (VaultError, SQLAlchemyError, ValueError):
        return False
    return True


@bp.get("/livez")
def livez():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    checks = {"database": False, "migrations": False, "keys": False}
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            checks["database"] = True
            current = set(MigrationContext.configure(conn).get_current_heads())
        checks["migrations"] = current == _script_heads()
    except SQLAlchemyError:
        pass
    checks["keys"] = checks["migrations"] and _keys_usable()
    ready = all(checks.values())
    return jsonify({"status": "ready" if ready else "not_ready", "checks": checks}), 200 if ready else 503
