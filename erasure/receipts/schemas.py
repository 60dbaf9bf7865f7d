"""The receipt and log API's schemas: bundles, verification, proofs and the JWKS."""
from __future__ import annotations

from marshmallow import fields, validate

from app.openapi import QueryInteger, StrictSchema

MAX_INDEX = 2**62


class LogProofSchema(StrictSchema):
    leaf_index = fields.Integer(strict=True, required=True, validate=validate.Range(0, MAX_INDEX))
    tree_size = fields.Integer(strict=True, required=True, validate=validate.Range(1, MAX_INDEX))
    inclusion = fields.List(fields.String(), required=True, metadata={
        "description": "RFC 9162 inclusion path, leaf to root: SHA-256 hashes in standard base64."})
    checkpoint = fields.String(required=True, metadata={
        "description": "The signed checkpoint: a C2SP signed note over origin, tree size and root."})


class OwnerProofSchema(StrictSchema):
    salt = fields.String(required=True, metadata={"description": "base64url, no padding."})
    identities = fields.List(fields.String(), required=True, metadata={
        "description": '"email:<email>", "account:<network>:<id>" or "handle:<network>:<handle>", sorted.'})


class BundleSchema(StrictSchema):
    """A receipt with its inclusion proof to the latest checkpoint; the API never adds owner_proof."""

    receipt = fields.String(required=True, metadata={"description": "The receipt: a compact JWS."})
    log = fields.Nested(LogProofSchema, required=True)


class VerifyRequestSchema(StrictSchema):
    """A compact JWS under "receipt", or a whole bundle (receipt, log, and optionally owner_proof).

    A bare receipt is looked up in this service's log and its inclusion checked against the latest checkpoint;
    a bundle's log proof is checked as sent.
    """

    receipt = fields.String(required=True, validate=validate.Length(1, 65536), metadata={
        "description": "The receipt exactly as issued: a compact JWS. With spaces or line breaks around it, it is "
                       "not the receipt: the answer is valid false, with the format check failed."})
    log = fields.Nested(LogProofSchema)
    owner_proof = fields.Nested(OwnerProofSchema)


class VerifyChecksSchema(StrictSchema):
    """Each of erasure.verify.CHECKS: passed (true), or failed or could not run (false).

    log_inclusion and checkpoint_signature are checked for a bare receipt too, against this service's log;
    owner only when the bundle carries an owner proof (false otherwise, and then it does not count).
    """

    format = fields.Boolean(required=True)
    key_known = fields.Boolean(required=True)
    kid_thumbprint = fields.Boolean(required=True)
    signature = fields.Boolean(required=True)
    claims = fields.Boolean(required=True)
    log_inclusion = fields.Boolean(required=True)
    checkpoint_signature = fields.Boolean(required=True)
    owner = fields.Boolean(required=True)


class VerifyAnswerSchema(StrictSchema):
    valid = fields.Boolean(required=True, metadata={
        "description": "True only when every check that applies passed: every check but owner, and owner too "
                       "when the bundle carries an owner proof."})
    checks = fields.Nested(VerifyChecksSchema, required=True)
    claims = fields.Dict(required=True, metadata={
        "description": "The receipt's payload, as signed; {} if it could not be read."})
    problems = fields.List(fields.String(), required=True, metadata={"description": "One line per failed check."})


class InclusionQuerySchema(StrictSchema):
    leaf_index = QueryInteger(required=True, validate=validate.Range(0, MAX_INDEX))
    tree_size = QueryInteger(required=True, validate=validate.Range(1, MAX_INDEX))


class ConsistencyQuerySchema(StrictSchema):
    first = QueryInteger(required=True, validate=validate.Range(1, MAX_INDEX))
    second = QueryInteger(required=True, validate=validate.Range(1, MAX_INDEX))


class InclusionProofSchema(StrictSchema):
    leaf_index = fields.Integer(required=True)
    tree_size = fields.Integer(required=True)
    hashes = fields.List(fields.String(), required=True, metadata={
        "description": "SHA-256 hashes in standard base64, ordered from the leaf to the root."})


class ConsistencyProofSchema(StrictSchema):
    first = fields.Integer(required=True)
    second = fields.Integer(required=True)
    hashes = fields.List(fields.String(), required=True, metadata={
        "description": "SHA-256 hashes in standard base64 (RFC 9162 2.1.4)."})


class JwkSchema(StrictSchema):
    kty = fields.String(required=True, validate=validate.Equal("OKP"))
    crv = fields.String(required=True, validate=validate.Equal("Ed25519"))
    x = fields.String(required=True, metadata={"description": "The public key, base64url."})
    kid = fields.String(required=True, metadata={"description": "The key's RFC 7638 thumbprint."})
    alg = fields.String(required=True, validate=validate.Equal("Ed25519"))
    use = fields.String(required=True, validate=validate.Equal("sig"))
    retired = fields.Boolean(metadata={"description": "Present and true once the key signs no more receipts."})
    retired_at = fields.String(metadata={"description": "When it was retired.", "format": "date-time"})


class JwksSchema(StrictSchema):
    keys = fields.List(fields.Nested(JwkSchema), required=True, metadata={
        "description": "Every receipt-signing key ever used, oldest first."})
