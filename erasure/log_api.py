"""The public receipt and log API: bundles, verification, the JWKS, checkpoints, proofs and leaves."""
from __future__ import annotations

import base64

from flask import Response, current_app, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.db import utcnow
from app.errors import ApiError
from app.extensions import db
from erasure import keys, log, receipts
from erasure.models import Receipt

blp = Blueprint("log_api", __name__, url_prefix="/api/v1",
                description="Receipts and the transparency log: open to anyone.")
wellknown = Blueprint("wellknown", __name__, description="Published keys.")

MAX_INDEX = 2**62


class InclusionQuery(Schema):
    leaf_index = fields.Integer(required=True, strict=False, validate=validate.Range(0, MAX_INDEX))
    tree_size = fields.Integer(required=True, strict=False, validate=validate.Range(1, MAX_INDEX))


class ConsistencyQuery(Schema):
    first = fields.Integer(required=True, strict=False, validate=validate.Range(1, MAX_INDEX))
    second = fields.Integer(required=True, strict=False, validate=validate.Range(1, MAX_INDEX))


class VerifyRequest(Schema):
    """A compact JWS under "receipt", or a whole bundle (receipt, log, and optionally owner_proof)."""

    receipt = fields.String(required=True, validate=validate.Length(1, 65536))
    log = fields.Dict()
    owner_proof = fields.Dict()

    @validates_schema
    def only_bundle_fields(self, data, **_kwargs):
        if set(data) - {"receipt", "log", "owner_proof"}:
            raise ValidationError("unknown field")


class VerifyAnswer(Schema):
    valid = fields.Boolean(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True)
    claims = fields.Dict(required=True)
    problems = fields.List(fields.String())


def _receipt(receipt_id: str) -> Receipt:
    receipt = db.session.get(Receipt, receipt_id[:36])
    if receipt is None:
        raise ApiError(404, "not_found", "No receipt with that id.")
    return receipt


@blp.route("/receipts/<receipt_id>", methods=["GET"])
def get_receipt(receipt_id: str):
    """The bundle: the signed receipt with its inclusion proof to the latest checkpoint (no owner proof)."""
    return jsonify(receipts.bundle(db.session, _receipt(receipt_id)))


@blp.route("/receipts/verify", methods=["POST"])
@blp.arguments(VerifyRequest)
@blp.response(200, VerifyAnswer)
def verify_receipt(body: dict):
    """Check a receipt or a bundle against the published keys and this log's checkpoint key."""
    from erasure.verify import verify

    report = verify(body if "log" in body or "owner_proof" in body else body["receipt"],
                    keys.jwks(db.session), _log_key())
    # A check that could not run (no log proof in a bare receipt) did not pass: false, not null.
    return {"valid": report.valid, "checks": {name: bool(ok) for name, ok in report.checks.items()},
            "claims": report.claims or {}, "problems": report.problems}


def _log_key() -> str:
    key = log.verifier_key(db.session, current_app.extensions["ownstory_vault"], current_app.config["LOG_ORIGIN"],
                           utcnow())
    db.session.commit()  # the log key is made on first need
    return key


def _text(body: str) -> Response:
    return Response(body, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


@blp.route("/log/checkpoint", methods=["GET"])
def checkpoint():
    """The latest signed checkpoint (C2SP tlog-checkpoint, signed note)."""
    latest = log.latest_checkpoint(db.session)
    if latest is None:
        raise ApiError(404, "not_found", "The log is empty: no receipt has been issued yet.")
    return _text(latest.note)


@blp.route("/log/key", methods=["GET"])
def log_key():
    """The log's note-verifier key: <origin>+<key id>+<base64 key>."""
    return _text(_log_key() + "\n")


@blp.route("/log/proof/inclusion", methods=["GET"])
@blp.arguments(InclusionQuery, location="query")
def inclusion(query: dict):
    """The RFC 9162 inclusion path of a leaf in the tree of a given size."""
    try:
        path = log.inclusion(db.session, query["leaf_index"], query["tree_size"])
    except log.LogError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    return jsonify({"leaf_index": query["leaf_index"], "tree_size": query["tree_size"],
                    "hashes": [base64.b64encode(h).decode() for h in path]})


@blp.route("/log/proof/consistency", methods=["GET"])
@blp.arguments(ConsistencyQuery, location="query")
def consistency(query: dict):
    """The RFC 9162 consistency path between two tree sizes."""
    try:
        path = log.consistency(db.session, query["first"], query["second"])
    except log.LogError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    return jsonify({"first": query["first"], "second": query["second"],
                    "hashes": [base64.b64encode(h).decode() for h in path]})


@blp.route("/log/leaves/<index>", methods=["GET"])
def leaf(index: str):
    """The receipt JWS stored at a leaf."""
    found = log.leaf(db.session, int(index)) if index.isdigit() and len(index) < 19 else None
    if found is None:
        raise ApiError(404, "not_found", "No leaf at that index.")
    return _text(found)


@wellknown.route("/.well-known/jwks.json", methods=["GET"])
def jwks():
    """Every receipt-signing public key ever used; retired ones are marked."""
    return jsonify(keys.jwks(db.session))
