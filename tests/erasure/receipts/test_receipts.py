"""Receipts and the log, as a leaving person and an auditor meet them: one receipt per request,
a bundle that verifies offline, proofs that check against the served checkpoint."""
import base64
import json
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.db import utcnow
from erasure.context import context_from_app
from erasure.models import Checkpoint, OptOutRequest, Receipt
from erasure.receipts import issue
from erasure.verifier import merkle, note
from erasure.verifier.verify import verify
from tests.erasure.helpers_optout import joined_person, submit_optout


def left(app, client, make_person, login, csrf_post, worker, account="1001"):
    """A person who joined and left everything, with the worker done: (request id, k)."""
    joined_person(client, make_person, login, csrf_post, account=account)
    status_path = submit_optout(client, csrf_post, "all")
    worker.drain()
    parts = urlsplit(status_path)
    return parts.path.rsplit("/", 1)[1], parse_qs(parts.query)["k"][0]


def served(client):
    jwks = client.get("/.well-known/jwks.json").json
    key = client.get("/api/v1/log/key").get_data(as_text=True).strip()
    return jwks, key


def test_an_opt_out_ends_with_a_receipt_that_verifies(app, client, make_person, login, csrf_post, worker, sessions):
    request_id, k = left(app, client, make_person, login, csrf_post, worker)
    status = client.get(f"/optout/{request_id}?k={k}").get_data(as_text=True)
    assert "See your signed deletion receipt" in status
    with sessions() as db:
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
    page = client.get(f"/receipts/{receipt.id}?k={k}").get_data(as_text=True)
    assert "we revoked our access at Demo Social and deleted 1 profile entry, 20 posts" in page
    assert "You can come back at any time, starting now." in page and "python -m erasure.verify" in page

    bundle = client.get(f"/receipts/{receipt.id}/bundle.json?k={k}").json
    jwks, log_key = served(client)
    report = verify(bundle, jwks, log_key)
    assert report.valid, report.problems
    claims = report.claims
    assert claims["request_id"] == request_id and claims["residual_rows"] == 0
    assert claims["reentry"]["waiting_period_days"] == 0
    assert {"store": "platform", "category": "posts", "rows": 20} in claims["purged"]
    assert [r["outcome"] for r in claims["revocations"]] == ["revoked"]
    assert bundle["owner_proof"]["identities"] == ["account:demo:1001", "handle:demo:liz"] or \
        "account:demo:1001" in bundle["owner_proof"]["identities"]

    # Without k: the same receipt, no owner proof; with a wrong k: nothing.
    public = client.get(f"/api/v1/receipts/{receipt.id}").json
    assert "owner_proof" not in public and public["receipt"] == bundle["receipt"]
    assert client.get(f"/receipts/{receipt.id}/bundle.json?k=" + "A" * 43).status_code == 404

    # The inclusion proof checks against the checkpoint the log serves now.
    checkpoint = note.open_checkpoint(client.get("/api/v1/log/checkpoint").get_data(as_text=True), log_key)
    proof = client.get("/api/v1/log/proof/inclusion",
                       query_string={"leaf_index": receipt.leaf_index, "tree_size": checkpoint.size}).json
    assert merkle.verify_inclusion(receipt.leaf_index, checkpoint.size,
                                   merkle.leaf_hash(receipt.jws.encode()),
                                   [base64.b64decode(h) for h in proof["hashes"]], checkpoint.root)
    assert client.get(f"/api/v1/log/leaves/{receipt.leaf_index}").get_data(as_text=True) == receipt.jws


def test_one_receipt_per_request_however_often_the_step_runs(app, client, make_person, login, csrf_post, worker,
                                                             sessions):
    request_id, _k = left(app, client, make_person, login, csrf_post, worker)
    ctx = context_from_app(app)
    results = []

    def issue_again():
        with sessions() as db:
            request = db.get(OptOutRequest, request_id)
            db.commit()  # as the worker does: the step's transaction begins after the claim's read
            results.append(issue.issue_receipt(db, ctx, request, ctx.log_origin, utcnow()).id)
            db.commit()

    threads = [threading.Thread(target=issue_again) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Receipt)) == 1
        assert len(set(results)) == 1
        assert db.scalar(select(func.max(Checkpoint.tree_size))) == 1


def test_the_log_stays_consistent_across_receipts(app, client, make_person, login, csrf_post, worker, sessions):
    for account in ("1001", "1002", "1003"):
        left(app, app.test_client(), make_person, login, csrf_post, worker, account)
    _jwks, log_key = served(client)
    with sessions() as db:
        checkpoints = db.scalars(select(Checkpoint).order_by(Checkpoint.tree_size)).all()
    assert [c.tree_size for c in checkpoints] == [1, 2, 3]
    for older in checkpoints[:-1]:
        answer = client.get("/api/v1/log/proof/consistency",
                            query_string={"first": older.tree_size, "second": 3}).json
        assert merkle.verify_consistency(older.tree_size, 3, older.root, checkpoints[-1].root,
                                         [base64.b64decode(h) for h in answer["hashes"]])
        assert note.open_checkpoint(older.note, log_key).root == older.root


def test_rotated_keys_stay_published_and_old_receipts_still_verify(app, client, make_person, login, csrf_post,
                                                                    worker, sessions):
    request_id, _k = left(app, client, make_person, login, csrf_post, worker)
    assert app.test_cli_runner().invoke(args=["keys", "rotate"]).exit_code == 0
    jwks, log_key = served(client)
    assert len(jwks["keys"]) == 2
    assert [bool(k.get("retired")) for k in jwks["keys"]] == [True, False]
    with sessions() as db:
        receipt = db.scalar(select(Receipt))
    assert verify(client.get(f"/api/v1/receipts/{receipt.id}").json, jwks, log_key).valid
    left(app, app.test_client(), make_person, login, csrf_post, worker, "1002")
    with sessions() as db:
        kids = db.scalars(select(Receipt.kid).order_by(Receipt.leaf_index)).all()
    assert kids[0] != kids[1] and kids[1] == jwks["keys"][1]["kid"]


def test_the_verify_api(app, client, make_person, login, csrf_post, worker, sessions):
    left(app, client, make_person, login, csrf_post, worker)
    with sessions() as db:
        receipt = db.scalar(select(Receipt))
    bundle = client.get(f"/api/v1/receipts/{receipt.id}").json
    answer = client.post("/api/v1/receipts/verify", json=bundle).json
    assert answer["valid"] and answer["checks"]["signature"] and answer["checks"]["log_inclusion"]
    assert answer["claims"]["receipt_id"] == receipt.id
    tampered = receipt.jws[:-4] + ("AAAA" if not receipt.jws.endswith("AAAA") else "BBBB")
    answer = client.post("/api/v1/receipts/verify", json={"receipt": tampered}).json
    assert answer["valid"] is False and answer["checks"]["signature"] is False
    for body in ({"receipt": "not a jws"}, {"receipt": "a.b"}, {"receipt": ""}, {}, [], {"receipt": 5}):
        response = client.post("/api/v1/receipts/verify", json=body)
        assert response.status_code in (200, 422), body
        assert response.status_code == 422 or response.json["valid"] is False
    assert client.post("/api/v1/receipts/verify", data="{", content_type="application/json").status_code == 400


@pytest.mark.parametrize("path", [
    "/api/v1/log/proof/inclusion?leaf_index=5&tree_size=2",
    "/api/v1/log/proof/inclusion?leaf_index=-1&tree_size=2",
    "/api/v1/log/proof/inclusion?leaf_index=x&tree_size=2",
    "/api/v1/log/proof/inclusion?leaf_index=0&tree_size=99999999999999999999999",
    "/api/v1/log/proof/consistency?first=0&second=1",
    "/api/v1/log/proof/consistency?first=3&second=2",
    "/api/v1/log/leaves/7",
    "/api/v1/receipts/not-a-receipt",
])
def test_bad_log_questions_get_clear_4xx(client, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500
    assert response.json["error"]["message"]


def test_an_empty_log_says_so(client):
    response = client.get("/api/v1/log/checkpoint")
    assert response.status_code == 404 and "empty" in response.json["error"]["message"]
    assert json.loads(json.dumps(client.get("/.well-known/jwks.json").json)) == {"keys": []}


def test_flask_receipts_verify_checks_a_bundle_with_this_services_keys(app, client, make_person, login, csrf_post,
                                                                      worker, sessions, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))  # where the command writes this service's JWKS
    request_id, k = left(app, client, make_person, login, csrf_post, worker)
    with sessions() as db:
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
    bundle = tmp_path / "receipt.json"
    bundle.write_text(json.dumps(client.get(f"/receipts/{receipt.id}/bundle.json?k={k}").json))
    result = app.test_cli_runner().invoke(args=["receipts", "verify", str(bundle)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output.lower()

    forged = json.loads(bundle.read_text())
    forged["receipt"] = forged["receipt"][:-4] + ("AAAA" if not forged["receipt"].endswith("AAAA") else "BBBB")
    bundle.write_text(json.dumps(forged))
    result = app.test_cli_runner().invoke(args=["receipts", "verify", str(bundle)])
    assert result.exit_code != 0 and "signature" in result.output.lower()
    assert list(scratch.iterdir()) == []  # the JWKS file it wrote is gone
