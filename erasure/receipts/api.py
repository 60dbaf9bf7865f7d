"""The public receipt and log API: bundles, verification, the JWKS, checkpoints, proofs and leaves."""
from __future__ import annotations

import base64
import re
import uuid

from flask import Response, current_app

from app.api_blueprint import Blueprint
from app.auth import anyone
from app.db import utcnow
from app.errors import ApiError
from app.extensions import db
from erasure.models import Receipt
from erasure.receipts import issue, keys, tlog, verification
from erasure.receipts.schemas import (
    MAX_INDEX,
    BundleSchema,
    ConsistencyProofSchema,
    ConsistencyQuerySchema,
    InclusionProofSchema,
    InclusionQuerySchema,
    JwksSchema,
    VerifyAnswerSchema,
    VerifyRequestSchema,
)

blp = Blueprint("log_api", __name__, url_prefix="/api/v1",
                description="Receipts and the transparency log: open to anyone.")
wellknown = Blueprint("wellknown", __name__, description="Published keys.")

TEXT = {"type": "string"}
LEAF_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)  # str.isdigit() also takes "²", which int() refuses
RECEIPT_ID = [{"in": "path", "name": "receipt_id", "description": "The receipt's id, a UUID."}]
LEAF_INDEX = [{"in": "path", "name": "index", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INDEX},
               "description": "The leaf's index in the log, from 0."}]


# A uuid converter: "/receipts/verify" is then no receipt's path, so GET there is 405, not "no such receipt".
@blp.route("/receipts/<uuid:receipt_id>", methods=["GET"], parameters=RECEIPT_ID)
@anyone
@blp.response(200, BundleSchema)
def get_receipt(receipt_id: uuid.UUID):
    """The bundle: the signed receipt with its inclusion proof to the latest checkpoint (no owner proof)."""
    receipt = db.session.get(Receipt, str(receipt_id))
    if receipt is None:
        raise ApiError(404, "not_found", "No receipt with that id.")
    return issue.bundle(db.session, receipt)


@blp.route("/receipts/verify", methods=["POST"])
@anyone
@blp.arguments(VerifyRequestSchema)
@blp.response(200, VerifyAnswerSchema)
def verify_receipt(body: dict):
    """Check a receipt or a bundle against the published keys, this log's checkpoint key and this log.

    A bare receipt is looked up in this service's log, and its inclusion checked against the latest
    checkpoint; a bundle's own proof is checked as it is. `valid` is true only when every check that
    applies passed: all of them, but `owner` only when the bundle carries an owner proof. A receipt is
    its exact text: with spaces or line breaks around it, it is not the receipt, and fails `format`.
    """
    answer = verification.verify(db.session, body, keys.jwks(db.session), _log_key())
    return {"valid": answer.valid, "checks": answer.checks, "claims": answer.claims, "problems": answer.problems}


def _log_key() -> str:
    return tlog.published_verifier_key(db.session, current_app.extensions["ownstory_vault"],
                                       current_app.config["LOG_ORIGIN"], utcnow())


def _text(body: str) -> Response:
    return Response(body, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


@blp.route("/log/checkpoint", methods=["GET"])
@anyone
@blp.response(200, TEXT, content_type="text/plain",
              description="The checkpoint as a C2SP signed note: origin, tree size, root, then the log's signature.")
@blp.alt_response(404, response="NotFound", description="The log is empty: no receipt has been issued yet.")
def checkpoint():
    """The latest signed checkpoint (C2SP tlog-checkpoint, signed note)."""
    latest = tlog.latest_checkpoint(db.session)
    if latest is None:
        raise ApiError(404, "not_found", "The log is empty: no receipt has been issued yet.")
    return _text(latest.note)


@blp.route("/log/key", methods=["GET"])
@anyone
@blp.response(200, TEXT, content_type="text/plain", description="<origin>+<key id, 8 hex digits>+<base64 key>")
def log_key():
    """The log's note-verifier key: <origin>+<key id>+<base64 key>."""
    return _text(_log_key() + "\n")


@blp.route("/log/proof/inclusion", methods=["GET"])
@anyone
@blp.arguments(InclusionQuerySchema, location="query")
@blp.response(200, InclusionProofSchema)
def inclusion(query: dict):
    """The RFC 9162 inclusion path of a leaf in the tree of a given size."""
    try:
        path = tlog.inclusion(db.session, query["leaf_index"], query["tree_size"])
    except tlog.LogError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    return {"leaf_index": query["leaf_index"], "tree_size": query["tree_size"],
            "hashes": [base64.b64encode(h).decode() for h in path]}


@blp.route("/log/proof/consistency", methods=["GET"])
@anyone
@blp.arguments(ConsistencyQuerySchema, location="query")
@blp.response(200, ConsistencyProofSchema)
def consistency(query: dict):
    """The RFC 9162 consistency path between two tree sizes."""
    try:
        path = tlog.consistency(db.session, query["first"], query["second"])
    except tlog.LogError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    return {"first": query["first"], "second": query["second"],
            "hashes": [base64.b64encode(h).decode() for h in path]}


@blp.route("/log/leaves/<index>", methods=["GET"], parameters=LEAF_INDEX)
@anyone
@blp.response(200, TEXT, content_type="text/plain", description="The receipt's compact JWS.")
def leaf(index: str):
    """The receipt JWS stored at a leaf."""
    found = None
    # Past the log's size there is nothing to look up, and PostgreSQL's integer column would refuse the number.
    if LEAF_DIGITS.fullmatch(index) and int(index) < tlog.size(db.session):
        found = tlog.leaf(db.session, int(index))
    if found is None:
        raise ApiError(404, "not_found", "No leaf at that index.")
    return _text(found)


@wellknown.route("/.well-known/jwks.json", methods=["GET"])
@anyone
@wellknown.response(200, JwksSchema)
def jwks():
    """Every receipt-signing public key ever used; retired ones are marked."""
    return keys.jwks(db.session)
