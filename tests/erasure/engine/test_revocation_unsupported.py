"""A network that cannot revoke access tokens (400 unsupported_token_type, RFC 7009 2.2.1), as Demo Social can act."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from demo.server import create_demo_app
from erasure.engine.revocation import GrantTokens, revoke
from erasure.models import Receipt
from erasure.verifier.verify import verify
from tests.erasure.engine.test_revocation import BASIC, demo_active, demo_grant, make_network
from tests.erasure.helpers_optout import demo_token_active, joined_person, sealed_tokens, submit_optout
from tests.helpers_live_tokens import strict
from tests.helpers_servers import serve

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def no_access_revocation():
    server = serve(create_demo_app({"DEMO_CLIENTS": [BASIC], "DEMO_ACCESS_TOKEN_REVOCATION_UNSUPPORTED": True}))
    yield server
    server.stop()


def network(demo):
    return make_network("rfc7009", f"{demo.url}/oauth/revoke", client_id=BASIC["client_id"],
                        client_secret=BASIC["client_secret"])


def test_revoking_the_refresh_token_is_enough(no_access_revocation):
    tokens = demo_grant(no_access_revocation)

    with requests.Session() as http:
        outcome = revoke(network(no_access_revocation), tokens, http)

    assert outcome.kind == "revoked"
    assert "cannot revoke access tokens; revoking the refresh token ended the grant" in outcome.note
    assert demo_active(no_access_revocation, tokens)["refresh_token"] is False


@pytest.mark.parametrize("expires_in, done", [(timedelta(hours=1), True), (timedelta(days=60), False)])
def test_without_a_refresh_token_the_access_token_must_expire_by_the_deadline(no_access_revocation, expires_in,
                                                                               done):
    token = demo_grant(no_access_revocation)
    tokens = GrantTokens(token.access_token, None, "1001", access_expires_at=NOW + expires_in)

    with requests.Session() as http:
        outcome = revoke(network(no_access_revocation), tokens, http, deadline=NOW + timedelta(days=30))

    assert outcome.done is done
    if done:
        assert "expires by itself at 2030-01-01T01:00:00Z, within the deadline" in outcome.note
    else:
        assert outcome.kind == "failed" and "unsupported_token_type" in outcome.error


def test_an_opt_out_completes_and_its_receipt_says_why(app, client, make_person, login, csrf_post, worker,
                                                       sessions, demo_network):
    joined_person(client, make_person, login, csrf_post, account="1005")
    _access, refresh = sealed_tokens(app, "1005")
    with strict(demo_network, "DEMO_ACCESS_TOKEN_REVOCATION_UNSUPPORTED"):
        status_path = submit_optout(client, csrf_post, "all")
        worker.drain()

    assert not demo_token_active(demo_network, refresh)
    request_id, k = status_path.split("?k=")[0].rsplit("/", 1)[1], status_path.split("?k=")[1]
    assert "needs attention" not in client.get(status_path).get_data(as_text=True).lower()
    with sessions() as db:
        receipt = db.scalar(select(Receipt).where(Receipt.request_id == request_id))
    assert receipt is not None, "the opt-out did not complete"
    bundle = client.get(f"/receipts/{receipt.id}/bundle.json?k={k}").json
    jwks = client.get("/.well-known/jwks.json").json
    report = verify(bundle, jwks, client.get("/api/v1/log/key").get_data(as_text=True).strip())
    assert report.valid, report.problems
    [revocation] = report.claims["revocations"]
    assert revocation["outcome"] == "revoked"
    assert revocation["note"] == ("Demo Social cannot revoke access tokens; revoking the refresh token ended "
                                  "the grant")
