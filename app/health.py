"""Liveness and readiness probes for load balancers and orchestrators; features add their readiness checks."""
from __future__ import annotations

import logging
from collections.abc import Callable

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.extensions import db
from app.migrate import alembic_config

bp = Blueprint("health", __name__)
CHECKS = "ownstory_readiness_checks"  # app.extensions' features' checks, by name
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)  # a probe a second would flood the log


def _script_heads() -> set[str]:
    """The migrations this code expects, read from disk once per process."""
    if "ownstory_script_heads" not in current_app.extensions:
        script = ScriptDirectory.from_config(alembic_config(current_app.config["DATABASE_URL"]))
        current_app.extensions["ownstory_script_heads"] = set(script.get_heads())
    return current_app.extensions["ownstory_script_heads"]


def register_check(app: Flask, name: str, check: Callable[[Session], bool]) -> None:
    """A feature's readiness check, answered under `name`: `check(session)` says whether the feature can serve.
    It runs only once the database answers and its migrations are current (before that it is not ready)."""
    app.extensions.setdefault(CHECKS, {})[name] = check


@bp.get("/livez")
def livez():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    features = current_app.extensions.get(CHECKS, {})
    checks = {"database": False, "migrations": False}
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            checks["database"] = True
            current = set(MigrationContext.configure(conn).get_current_heads())
        checks["migrations"] = current == _script_heads()
    except SQLAlchemyError:
        pass
    for name, check in features.items():
        checks[name] = checks["migrations"] and check(db.session)
    ready = all(checks.values())
    return jsonify({"status": "ready" if ready else "not_ready", "checks": checks}), 200 if ready else 503
