"""The auditor pages: who may see them, receipts per day, verifying real, tampered and garbage input,
checkpoints and a consistency check shown step by step, and the export, all without personal data."""
from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.models import AuditEvent
from erasure.models import Receipt
from erasure.receipts.log_trace import trace_consistency
from erasure.verifier import merkle
from tests.conftest import csrf_token_from, db_session
from tests.erasure.helpers_optout import joined_person, submit_optout
from tests.erasure.oversight.helpers_seed import grow_log, seed_every_state
from tests.helpers_statements import counted

AUDITOR_GETS = ["/auditor", "/auditor/verify", "/auditor/checkpoints", "/auditor/checkpoints?before=3",
                "/auditor/consistency?first=1&second=2", "/auditor/export.csv", "/auditor/export.json"]


def real_bundle(app, make_person, login, csrf_post, worker) -> tuple[dict, str]:
    """A person joins through Demo Social, leaves, the worker finishes: their bundle (with owner proof), email."""
    client = app.test_client()
    person = joined_person(client, make_person, login, csrf_post, account="1001")
    status_path = submit_optout(client, csrf_post, "all")
    worker.drain()
    parts = urlsplit(status_path)
    request_id, k = parts.path.rsplit("/", 1)[1], parse_qs(parts.query)["k"][0]
    with db_session(app) as db:
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
    bundle = client.get(f"/receipts/{receipt.id}/bundle.json?k={k}").json
    assert bundle["owner_proof"]["identities"]
    return bundle, person.email


def verify_post(client, **data):
    token = csrf_token_from(client.get("/auditor/verify").get_data(as_text=True))
    return client.post("/auditor/verify", data={**data, "csrf_token": token}, content_type="multipart/form-data")


def checks_table(html: str) -> dict[str, str]:
    found = re.findall(r'<tr class="[\w-]+"><th scope="row">([^<]+)</th><td><strong>([^<]+)</strong>', html)
    return {unescape(name): result for name, result in found}


# --- who may see them ------------------------------------------------------------------------------

@pytest.mark.parametrize("role", [None, "person", "operator", "auditor", "service"])
def test_only_auditors_see_the_auditor_pages(app, signed_in, api_token, role):
    grow_log(app, 2)
    client = signed_in(None if role == "service" else role)
    headers = {"Authorization": f"Bearer {api_token('service')}"} if role == "service" else {}
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    responses = [(path, client.get(path, headers=headers)) for path in AUDITOR_GETS]
    responses.append(("POST /auditor/verify", client.post("/auditor/verify", headers=headers,
                                                          data={"csrf_token": token, "receipt": "x"})))
    for path, response in responses:
        if role == "auditor":
            assert response.status_code in (200, 400), (path, response.status_code)
            if path != "POST /auditor/verify":
                assert response.status_code == 200, path
        elif role in (None, "service"):
            assert response.status_code == 302, (path, response.status_code)
            assert response.headers["Location"].startswith("/login?next=")
        else:
            assert response.status_code == 403, (path, response.status_code)
            assert "These pages are for auditors only." in response.get_data(as_text=True)
    nav = client.get("/").get_data(as_text=True)
    assert ('href="/auditor">Audit</a>' in nav) is (role == "auditor")


# --- receipts per day ------------------------------------------------------------------------------

def test_receipts_per_day_in_one_query(app, signed_in, make_person, login, csrf_post, worker):
    real_bundle(app, make_person, login, csrf_post, worker)
    client = signed_in("auditor")
    with counted(app) as statements:
        html = client.get("/auditor").get_data(as_text=True)
    grouped = [s for s in statements if "GROUP BY" in s]
    assert len(grouped) == 1 and "receipts" in grouped[0]
    today = utcnow().date()
    assert re.search(rf'<time datetime="{today.isoformat()}">[^<]+</time></th><td>1</td>', html)
    assert "1 in all" in html and html.count("<td>0</td>") == 29
    assert "Tree size</dt><dd>1 leaf, one per receipt" in html


# --- verify ----------------------------------------------------------------------------------------

def test_a_real_bundle_is_valid_by_paste_and_by_upload_and_is_audited(app, signed_in, make_person, login,
                                                                      csrf_post, worker, session):
    bundle, email = real_bundle(app, make_person, login, csrf_post, worker)
    client = signed_in("auditor")
    for how, data in (("file", {"bundle": (io.BytesIO(json.dumps(bundle).encode()), "receipt.json")}),
                      ("pasted", {"receipt": json.dumps(bundle, indent=2)})):
        response = verify_post(client, **data)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, html
        assert "Valid: this receipt was signed by this service and is in its transparency log." in html
        checks = checks_table(html)
        assert set(checks.values()) == {"Passed"}, checks
        assert len(checks) == 8
        assert bundle["receipt"] not in html and email not in html.lower()  # the input is never echoed
        for identity in bundle["owner_proof"]["identities"]:
            assert identity.split(":")[-1] not in re.sub(r"[0-9a-f-]{36}|\d{4}-\d\d-\d\dT[\d:]+Z", "", html)
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "receipt_verify")
                               .order_by(AuditEvent.seq.desc()))
        assert event.actor_id == client.user.id and event.details == {"input": how, "valid": True}
        session.rollback()
    # A bare receipt: this service holds the log, so its leaf is checked against the signed checkpoint.
    html = verify_post(client, receipt=bundle["receipt"]).get_data(as_text=True)
    assert "Valid: this receipt was signed by this service and is in its transparency log." in html
    checks = checks_table(html)
    assert checks[next(name for name in checks if "log" in name.lower())] == "Passed", checks
    assert "the log proof was taken from this service&#39;s log" in html
    assert "A bare receipt carries no log proof; a bundle does." not in html


def _tampered_payload(jws: str) -> str:
    header, payload, signature = jws.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["residual_rows"] = 0 if claims["residual_rows"] else 1
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def test_tampered_receipts_are_invalid_and_say_which_check_failed(app, signed_in, make_person, login, csrf_post,
                                                                 worker):
    bundle, _email = real_bundle(app, make_person, login, csrf_post, worker)
    client = signed_in("auditor")
    forged = {**bundle, "receipt": _tampered_payload(bundle["receipt"])}
    html = verify_post(client, receipt=json.dumps(forged)).get_data(as_text=True)
    assert "Invalid: this receipt does not check out." in html
    checks = checks_table(html)
    assert checks["The Ed25519 signature over the receipt is valid"] == "Failed"
    assert checks["The receipt is in the transparency log, under the bundle's checkpoint"] == "Failed"
    assert "the signature does not verify" in html

    moved = {**bundle, "log": {**bundle["log"], "leaf_index": bundle["log"]["leaf_index"] + 1}}
    checks = checks_table(verify_post(client, receipt=json.dumps(moved)).get_data(as_text=True))
    assert checks["The Ed25519 signature over the receipt is valid"] == "Passed"
    assert checks["The receipt is in the transparency log, under the bundle's checkpoint"] == "Failed"

    lines = bundle["log"]["checkpoint"].split("\n")
    lines[1] = str(int(lines[1]) + 1)
    resigned = {**bundle, "log": {**bundle["log"], "checkpoint": "\n".join(lines)}}
    checks = checks_table(verify_post(client, receipt=json.dumps(resigned)).get_data(as_text=True))
    assert checks["That checkpoint is signed by this log's key"] == "Failed"

    wrong_owner = {**bundle, "owner_proof": {**bundle["owner_proof"], "identities": ["email:someone@example.org"]}}
    html = verify_post(client, receipt=json.dumps(wrong_owner)).get_data(as_text=True)
    assert checks_table(html)["The owner proof matches the receipt's subject commitment"] == "Failed"
    assert "someone@example.org" not in html


@pytest.mark.parametrize("garbage", [
    "hello", "a.b.c", "{", "[]", "null", '{"receipt": 7}', "[" * 100_000, "{\"receipt\": \"" + "A" * 200_000 + "\"}",
    "\x00\x01\x02", "eyJhbGciOiJub25lIn0.e30.", json.dumps({"receipt": "x.y.z", "log": "nope", "owner_proof": []})])
def test_garbage_is_invalid_or_refused_never_a_500(app, signed_in, garbage):
    client = signed_in("auditor")
    for data in ({"receipt": garbage}, {"bundle": (io.BytesIO(garbage.encode()), "x.json")}):
        response = verify_post(client, **data)
        html = response.get_data(as_text=True)
        assert response.status_code in (200, 400), (response.status_code, html[:300])
        assert "Invalid" in html or 'role="alert"' in html
        assert "Valid:" not in html


def test_odd_uploads_are_refused_in_words(app, signed_in):
    client = signed_in("auditor")
    for data, words in (({}, "Paste a receipt or a bundle, or choose a bundle file."),
                        ({"bundle": (io.BytesIO(b""), "empty.json")}, "That file is empty."),
                        ({"bundle": (io.BytesIO(b"x" * 300_000), "big.json")}, "larger than 256 KiB"),
                        ({"bundle": (io.BytesIO(bytes(range(256)) * 10), "bin.json")}, "Invalid")):
        response = verify_post(client, **data)
        assert response.status_code in (200, 400) and words in response.get_data(as_text=True)
    too_big = client.post("/auditor/verify", data={"receipt": "x" * (2 << 20)})
    assert too_big.status_code == 413


def test_verify_needs_a_csrf_token(app, signed_in):
    client = signed_in("auditor")
    assert client.post("/auditor/verify", data={"receipt": "x"}).status_code == 400


# --- checkpoints and consistency -----------------------------------------------------------------------

def test_checkpoints_are_listed_newest_first_in_pages(app, signed_in):
    grow_log(app, 30)
    client = signed_in("auditor")
    html = client.get("/auditor/checkpoints").get_data(as_text=True)
    sizes = [int(s) for s in re.findall(r'<tr><th scope="row">(\d+)</th>', html)]
    assert sizes == list(range(30, 5, -1))
    assert "— " in html and "\n30\n" in html  # the latest note, as served
    older = re.search(r'<a href="([^"]+)" rel="next">Older checkpoints</a>', html).group(1)
    html = client.get(older).get_data(as_text=True)
    assert [int(s) for s in re.findall(r'<tr><th scope="row">(\d+)</th>', html)] == [5, 4, 3, 2, 1]
    assert 'rel="next"' not in html
    for bad in ("before=x", "before=-1", "before=0", "before=" + "9" * 30, "before=%C2%B2", "before=%D9%A3",
                f"before={2**31}", f"before={2**62}"):
        assert client.get("/auditor/checkpoints?" + bad).status_code == 400, bad
    for bad in ("first=%C2%B2&second=3", f"first=1&second={2**40}"):
        assert client.get("/auditor/consistency?" + bad).status_code == 400, bad


def test_a_consistency_check_is_shown_as_it_is_computed_and_audited(app, signed_in, session):
    grow_log(app, 7)
    client = signed_in("auditor")
    for first, second in ((3, 7), (4, 7), (1, 2), (6, 6)):
        response = client.get(f"/auditor/consistency?first={first}&second={second}")
        html = response.get_data(as_text=True)
        assert response.status_code == 200, html
        assert f"Consistent: the tree of {second} contains the tree of {first} unchanged." in html
        assert html.count("Signed by the log key") == 2
        answer = client.get(f"/api/v1/log/proof/consistency?first={first}&second={second}").json
        for h in answer["hashes"]:
            assert h in html
        assert "The path is used up exactly" in html or first == second
        assert "disagrees" not in html
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "log_consistency_check")
                           .order_by(AuditEvent.seq.desc()))
    assert event.actor_id == client.user.id and event.details == {"first": 6, "second": 6, "consistent": True}
    # Swapped sizes are put in order; sizes the log never had are 404; nonsense is 400.
    assert "tree of 7 contains the tree of 3" in client.get("/auditor/consistency?first=7&second=3").get_data(
        as_text=True)
    assert client.get("/auditor/consistency?first=3&second=99").status_code == 404
    for bad in ("first=a&second=2", "first=0&second=2", "first=1", ""):
        assert client.get("/auditor/consistency?" + bad).status_code == 400


def test_the_trace_agrees_with_the_verifier_for_every_pair_and_catches_a_forged_root():
    leaves = [merkle.leaf_hash(f"leaf {n}".encode()) for n in range(17)]
    roots = {n: merkle.root_from_leaves(leaves[:n]) for n in range(1, 18)}

    for second in range(1, 18):
        nodes = _all_nodes(leaves[:second])
        for first in range(1, second + 1):
            proof = merkle.consistency_proof(first, second, lambda lv, ix, nodes=nodes: nodes[(lv, ix)])
            trace = trace_consistency(first, second, roots[first], roots[second], proof)
            assert trace.consistent and trace.trace_agrees, (first, second)
            if first < second:
                forged = trace_consistency(first, second, roots[first], bytes(32), proof)
                assert not forged.consistent and forged.trace_agrees
                assert any("does NOT equal the new checkpoint's root" in s.text for s in forged.steps)
                short = trace_consistency(first, second, roots[first], roots[second], proof[:-1])
                assert not short.consistent and short.trace_agrees


def _all_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every complete subtree's hash, keyed (level, index), as the log stores them."""
    nodes = {(0, i): h for i, h in enumerate(leaves)}
    level = 0
    while True:
        count = len(leaves) >> (level + 1)
        if not count:
            return nodes
        for i in range(count):
            nodes[(level + 1, i)] = merkle.node_hash(nodes[(level, 2 * i)], nodes[(level, 2 * i + 1)])
        level += 1


# --- the export ----------------------------------------------------------------------------------

def test_the_export_is_well_formed_streamed_and_names_nobody(app, signed_in, make_person, session):
    ids, secrets = seed_every_state(app, make_person)
    client = signed_in("auditor")
    response = client.get("/auditor/export.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="ownstory-requests-')
    text = response.get_data(as_text=True)
    secrets.assert_absent(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["request_id", "requested_at", "deadline", "completed_at", "seconds_to_complete",
                             "met_deadline", "status", "scope_kind"]
    by_id = {r["request_id"]: r for r in rows}
    assert set(by_id) == set(ids.values())
    assert [r["request_id"] for r in rows] == [ids[s] for s in ("overdue", "needs_attention", "in_progress",
                                                                 "received", "completed")]  # oldest request first
    done = by_id[ids["completed"]]
    assert done["status"] == "completed" and done["met_deadline"] == "yes" and done["seconds_to_complete"] == "240.0"
    assert by_id[ids["overdue"]]["met_deadline"] == "no" and by_id[ids["overdue"]]["completed_at"] == ""
    assert by_id[ids["received"]]["met_deadline"] == "" and {r["scope_kind"] for r in rows} == {"all"}
    for r in rows:
        for name in ("requested_at", "deadline"):
            dt.datetime.strptime(r[name], "%Y-%m-%dT%H:%M:%SZ")

    answer = client.get("/auditor/export.json")
    assert answer.mimetype == "application/json" and answer.is_streamed
    body = json.loads(answer.get_data(as_text=True))
    secrets.assert_absent(answer.get_data(as_text=True))
    assert body["deadline_days"] == 30 and len(body["requests"]) == 5
    item = next(r for r in body["requests"] if r["request_id"] == ids["completed"])
    assert item["met_deadline"] is True and item["seconds_to_complete"] == 240.0
    assert next(r for r in body["requests"] if r["request_id"] == ids["received"])["met_deadline"] is None

    # A date range: the one request made 3 days ago.
    day = (utcnow() - dt.timedelta(days=3)).date().isoformat()
    ranged = json.loads(client.get(f"/auditor/export.json?since={day}&until={day}").get_data(as_text=True))
    assert [r["request_id"] for r in ranged["requests"]] == [ids["completed"]]
    assert client.get("/auditor/export.csv?since=yesterday").status_code == 400
    assert client.get("/auditor/export.xml").status_code == 404
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "requests_export")).all()
    assert [e.details["format"] for e in events] == ["csv", "json", "json"]


def test_the_export_reads_in_batches(app, signed_in, sessions):
    from erasure.oversight import queries
    from tests.erasure.oversight.helpers_seed import bulk_requests

    ids = bulk_requests(app, 250)
    with sessions() as db, counted(app) as statements:
        rows = list(queries.export_rows(db, utcnow(), batch=100))
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert len([s for s in statements if s.lstrip().startswith("SELECT")]) == 3
    assert [r["requested_at"] for r in rows] == sorted(r["requested_at"] for r in rows)
