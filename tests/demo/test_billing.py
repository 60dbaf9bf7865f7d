"""Demo Billing, the reference service: it serves only Ownstory's signed calls, and erases once per request_id."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from erasure.stores.http_signing import RequestSigner
from tests.erasure.stores.helpers_billing import billing_app
from tests.helpers_servers import serve

LIZ = "email:liz@example.org"
ASK = {"categories": ["invoices"], "identities": [LIZ]}


def call(url: str, body: dict, signer: RequestSigner | None, method: str = "POST",
         tamper=None) -> requests.Response:
    request = requests.Request(method, url, json=body if method == "POST" else None).prepare()
    if signer is not None:
        signer.sign(request)
    if tamper:
        tamper(request)
    return requests.Session().send(request, timeout=5)


def test_a_signed_call_is_answered(billing, billing_server, published_keys):
    billing.add_invoices(LIZ, 2)
    answer = call(f"{billing_server.url}/count", ASK, published_keys.signer())
    assert answer.status_code == 200
    assert answer.json() == {"counts": {"invoices": 2}}


def _other_key_same_kid(published_keys) -> RequestSigner:
    kid, _ = published_keys.current()
    impostor = Ed25519PrivateKey.generate()
    return RequestSigner(lambda: (kid, impostor))


def _body_swapped(request: requests.PreparedRequest) -> None:
    request.body = request.body.replace(b"liz@", b"mei@")
    request.headers["Content-Length"] = str(len(request.body))


def _other_tag(published_keys):
    kid, key = published_keys.current()

    def tamper(request):
        now = dt.datetime.now(dt.UTC)
        HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                          key_resolver=MappingKeyResolver(public_keys={}, private_keys={kid: key})).sign(
            request, key_id=kid, created=now, expires=now + dt.timedelta(minutes=1), tag="something-else",
            label="ownstory", covered_component_ids=("@method", "@target-uri", "content-type", "content-digest"),
            body=request.body)
    return tamper


@pytest.mark.parametrize("how", ["unsigned", "forged", "tampered", "stale", "other tag", "no expiry"])
def test_a_call_not_signed_by_ownstory_is_refused_and_changes_nothing(how, billing, billing_server, published_keys):
    billing.add_invoices(LIZ, 2)
    signer, tamper = published_keys.signer(), None
    if how == "unsigned":
        signer = None
    elif how == "forged":
        signer = _other_key_same_kid(published_keys)
    elif how == "tampered":
        tamper = _body_swapped
    elif how == "stale":
        signer = published_keys.signer(clock=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    elif how == "other tag":
        signer, tamper = None, _other_tag(published_keys)
    else:
        def tamper(request):
            request.headers["Signature-Input"] = request.headers["Signature-Input"].replace(";expires=", ";x=")

    answer = call(billing_server.url, {**ASK, "request_id": str(uuid.uuid4())}, signer, tamper=tamper)
    assert answer.status_code == 401
    assert answer.json() == {"error": "the request is not signed by Ownstory"}
    assert billing.held(LIZ) == 2


def test_a_key_retired_before_the_call_is_refused(billing, billing_server, published_keys):
    old_kid, old_key = published_keys.current()
    published_keys.rotate()
    stale = RequestSigner(lambda: (old_kid, old_key))
    assert call(f"{billing_server.url}/count", ASK, stale).status_code == 401
    assert call(f"{billing_server.url}/count", ASK, published_keys.signer()).status_code == 200  # the new key, seen


def test_the_same_request_id_twice_deletes_once_and_answers_the_same(billing, billing_server, published_keys):
    billing.add_invoices(LIZ, 2)
    body = {**ASK, "request_id": str(uuid.uuid4())}
    first = call(billing_server.url, body, published_keys.signer())
    billing.add_invoices(LIZ, 1)  # arrives after the erasure
    again = call(billing_server.url, body, published_keys.signer())
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"deleted": {"invoices": 2}}
    assert billing.held(LIZ) == 1


def test_202_then_done_through_the_status_url(billing, billing_server, published_keys):
    billing.add_invoices(LIZ, 2)
    billing.polls_before_done = 2
    accepted = call(billing_server.url, {**ASK, "request_id": "r-1"}, published_keys.signer())
    assert accepted.status_code == 202
    status_url = billing_server.url + accepted.json()["status_url"]
    assert call(status_url, {}, published_keys.signer(), method="GET").status_code == 202
    done = call(status_url, {}, published_keys.signer(), method="GET")
    assert (done.status_code, done.json()) == (200, {"deleted": {"invoices": 2}})
    assert call(status_url + "x", {}, published_keys.signer(), method="GET").status_code == 404
    assert call(status_url, {}, None, method="GET").status_code == 401  # polls are signed too


@pytest.mark.parametrize("body", [{}, {"categories": ["payments"], "identities": [LIZ], "request_id": "r"},
                                  {"categories": ["invoices"], "identities": "email:liz", "request_id": "r"},
                                  {"categories": ["invoices"], "identities": [LIZ]}])
def test_a_body_that_is_not_the_protocols_is_a_400(body, billing, billing_server, published_keys):
    answer = call(billing_server.url, body, published_keys.signer())
    assert answer.status_code == 400 and "error" in answer.json()


def test_under_make_run_each_email_gets_two_invoices_the_first_time_only(tmp_path, published_keys):
    with serve(billing_app(str(tmp_path / "b.db"), published_keys.jwks_url, seed=True)) as server:
        count = f"{server.url}/count"
        assert call(count, ASK, published_keys.signer()).json() == {"counts": {"invoices": 2}}
        erased = call(server.url, {**ASK, "request_id": "r"}, published_keys.signer())
        assert erased.json() == {"deleted": {"invoices": 2}}
        assert call(count, ASK, published_keys.signer()).json() == {"counts": {"invoices": 0}}  # never again
        others = {"categories": ["invoices"], "identities": ["account:demo:1001"]}
        assert call(count, others, published_keys.signer()).json() == {"counts": {"invoices": 0}}


def test_keys_that_cannot_be_fetched_ask_for_a_retry(tmp_path, published_keys):
    from tests.helpers_browser import free_port

    with serve(billing_app(str(tmp_path / "b.db"), f"http://127.0.0.1:{free_port()}/jwks.json")) as server:
        answer = call(f"{server.url}/count", ASK, published_keys.signer())
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
