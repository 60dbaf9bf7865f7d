"""POST /api/v1/receipts/verify (erasure/receipts/verification.py): a bare receipt is looked up in the service's
own log, `valid` means every check that applies passed, and a receipt is its exact text."""
from __future__ import annotations

import json
import uuid

import pytest
from joserfc import jws
from joserfc.jwk import OKPKey
from sqlalchemy import select

from app.db import utcnow
from app.text import b64url_decode
from erasure.context import context_from_app
from erasure.models import Receipt
from erasure.receipts import issue, keys
from tests.erasure.helpers_optout import joined_person, submit_optout

VERIFY = "/api/v1/receipts/verify"
EVERY_CHECK_BUT_OWNER = ("format", "key_known", "kid_thumbprint", "signature", "claims", "log_inclusion",
                         "checkpoint_signature")


@pytest.fixture
def receipt(app, client, make_person, login, csrf_post, worker, sessions) -> Receipt:
    """The receipt of a person who joined and left everything."""
    joined_person(client, make_person, login, csrf_post, account="1001")
    submit_optout(client, csrf_post, "all")
    worker.drain()
    with sessions() as db:
        return db.scalar(select(Receipt))


def test_a_bare_receipt_in_the_log_is_valid_with_its_inclusion_checked(client, receipt):
    answer = client.post(VERIFY, json={"receipt": receipt.jws})
    assert answer.status_code == 200
    assert answer.json["valid"] is True
    assert all(answer.json["checks"][name] is True for name in EVERY_CHECK_BUT_OWNER), answer.json
    assert answer.json["checks"]["owner"] is False  # no owner proof was sent: it does not apply
    assert answer.json["claims"]["receipt_id"] == receipt.id and answer.json["problems"] == []


@pytest.mark.parametrize("around", [(" ", ""), ("", "\n"), ("\t", " "), ("\ufeff", ""), ("", "\r\n")])
def test_a_receipt_with_anything_around_it_is_not_the_receipt(client, receipt, around):
    before, after = around
    answer = client.post(VERIFY, json={"receipt": before + receipt.jws + after})
    assert answer.status_code == 200
    assert answer.json["valid"] is False and answer.json["checks"]["format"] is False
    assert answer.json["problems"] == [
        "format: the receipt has spaces or line breaks around it; send it exactly as it was issued, "
        "character for character"]
    bundle = client.get(f"/api/v1/receipts/{receipt.id}").json
    answer = client.post(VERIFY, json={**bundle, "receipt": before + receipt.jws + after})
    assert answer.json["valid"] is False and answer.json["checks"]["format"] is False


def test_a_well_signed_receipt_the_log_does_not_hold_is_not_valid(app, client, receipt, sessions):
    """Signed with the service's own key (as a stolen key, or a bug, would sign it), but never logged."""
    claims = json.loads(b64url_decode(receipt.jws.split(".")[1]))
    claims["receipt_id"] = str(uuid.uuid4())
    with sessions() as db:
        row, private = keys.current(db, context_from_app(app).vault, "receipt", utcnow())
        db.commit()
    unlogged = jws.serialize_compact({"alg": "Ed25519", "kid": row.kid, "typ": issue.HEADER_TYPE},
                                     json.dumps(claims, separators=(",", ":")).encode(), OKPKey.import_key(private),
                                     algorithms=["Ed25519"])

    answer = client.post(VERIFY, json={"receipt": unlogged}).json

    assert answer["checks"]["signature"] is True and answer["checks"]["claims"] is True
    assert answer["checks"]["log_inclusion"] is False and answer["valid"] is False
    assert "log_inclusion: this receipt is not in this service's log" in answer["problems"]


def test_a_bundle_is_checked_as_sent_and_an_owner_proof_counts_when_there_is_one(app, client, receipt):
    bundle = client.get(f"/api/v1/receipts/{receipt.id}").json
    answer = client.post(VERIFY, json=bundle).json
    assert answer["valid"] is True and answer["checks"]["log_inclusion"] is True

    wrong_owner = {**bundle, "owner_proof": {"salt": "AAAA", "identities": ["email:someone@example.org"]}}
    answer = client.post(VERIFY, json=wrong_owner).json
    assert answer["valid"] is False and answer["checks"]["owner"] is False

    other_proof = {**bundle, "log": {**bundle["log"], "inclusion": ["A" * 43 + "="]}}
    answer = client.post(VERIFY, json=other_proof).json
    assert answer["valid"] is False and answer["checks"]["log_inclusion"] is False


def test_the_document_says_what_verify_checks(client):
    doc = client.get("/api/v1/openapi.json").json
    schemas = doc["components"]["schemas"]
    request = next(s for name, s in schemas.items() if name.startswith("VerifyRequest"))
    assert "exactly as issued" in request["properties"]["receipt"]["description"]
    answer = next(s for name, s in schemas.items() if name.startswith("VerifyAnswer"))
    assert "every check that applies passed" in answer["properties"]["valid"]["description"]
    operation = doc["paths"]["/api/v1/receipts/verify"]["post"]
    assert "looked up in this service's log" in operation["description"]
