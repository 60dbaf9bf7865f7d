"""The consent API for programs: POST /api/v1/consent/check."""
from __future__ import annotations

from flask import current_app, jsonify

from app.api_blueprint import Blueprint
from app.auth import bearer
from app.errors import ApiError
from app.extensions import db
from app.metrics import consent_checks_served
from consent import service, suppression
from consent.schemas import CheckRequestSchema, CheckResponseSchema

blp = Blueprint("consent_api", __name__, url_prefix="/api/v1", description="Consent checks for services.")


# bearer sits above arguments, so an anonymous caller gets 401 before its body is even parsed.
@blp.route("/consent/check", methods=["POST"])
@bearer("service")
@blp.arguments(CheckRequestSchema)
@blp.response(200, CheckResponseSchema)
def check(body: dict):
    """May these people's data be used for these purposes? Up to 1,000 checks, answered in order."""
    try:
        results = service.check(db.session, body["checks"], current_app.extensions["purposes"],
                                current_app.extensions["networks"], suppressed=suppression_seam())
    except service.InvalidCheck as exc:
        raise ApiError(422, "invalid", f"The request is not valid: {exc}",
                       {"checks": {str(exc.index): {exc.field: [exc.message]}}}) from None
    consent_checks_served(len(results))
    # Answered as built: service.check makes each result in CheckResultSchema's shape, and dumping a
    # thousand of them through the schema again cost more than the check's queries.
    return jsonify({"results": results})


def suppression_seam() -> service.Suppressed:
    """The opt-out list's lookup, with the configured peppers."""
    return suppression.consent_seam(current_app.extensions["ownstory_peppers"])
