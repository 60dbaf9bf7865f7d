"""A revocation signed by the user's access token (Meta's style) refreshes an expired token first, against
Demo Social rotating its refresh tokens, and keeps the rotated ones on the step for a retry."""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest
import requests
from flask import Flask, jsonify, request
from sqlalchemy import select, update

from app.db import utcnow
from consent.networks import Networks, Revocation
from demo.models import Token
from erasure.engine.worker import Worker
from erasure.models import ErasureStep
from tests.conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.erasure.engine.helpers_fake_networks import graph_error
from tests.erasure.engine.test_steps import leave
from tests.helpers_live_tokens import active, live_tokens, strict
from tests.helpers_servers import serve

ACCOUNT = "1002"


@pytest.fixture
def worker(app):
    """A worker that claims every due step in one round: the purges run alongside the revocation, and
    each round here must take the revocation with them."""
    w = Worker(app, threads=2, batch=32)
    yield w
    w.close()


def create_graph_on_demo(demo_network, fail_first: int = 0) -> Flask:
    """Meta's permission deletion, trusting Demo Social's tokens: it asks Demo Social whether the access
    token is live (introspection), and deleting the permission ends the account's whole authorization."""
    app = Flask("graph_on_demo")
    failures = [fail_first]

    @app.delete("/<account_id>/permissions")
    def revoke(account_id: str):
        if failures[0] > 0:
            failures[0] -= 1
            return jsonify(graph_error(2, "Service temporarily unavailable")), 503
        answer = requests.post(f"{demo_network.url}/oauth/introspect", data={"token": request.args["access_token"]},
                               auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), timeout=5).json()
        if not answer.get("active"):
            return jsonify(graph_error(190, "Error validating access token: Session has expired.")), 400
        if answer.get("sub") != account_id:
            return jsonify(graph_error(200, "Permissions error")), 403
        _end_grant_at_demo(demo_network, account_id, revoke=True)
        return jsonify({"success": True})

    return app


def _end_grant_at_demo(demo_network, account_id: str, *, revoke: bool = False, age: int = 0) -> None:
    state = demo_network.app.extensions["demo"]
    with state.db_lock, state.sessions() as db:
        for row in db.scalars(select(Token).where(Token.client_id == DEMO_CLIENT_ID, Token.account_id == account_id)):
            if revoke:
                row.access_token_revoked_at = row.refresh_token_revoked_at = row.issued_at + 1
            if age:
                row.issued_at -= age
        db.commit()


@pytest.fixture
def expired_optout(app, client, make_person, login, csrf_post, sessions, demo_network):
    """A person joined through Demo Social and left; by the time the worker revokes, the access token has ended
    (at Demo Social, and by the expiry Ownstory stored on the step)."""
    left = leave(app, client, make_person, login, csrf_post)
    _end_grant_at_demo(demo_network, ACCOUNT, age=2 * 3600 * 24)
    with sessions() as db:
        step = db.scalar(select(ErasureStep).where(ErasureStep.request_id == left.request_id,
                                                   ErasureStep.kind == "revoke"))
        past = (utcnow() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        db.execute(update(ErasureStep).where(ErasureStep.id == step.id)
                   .values(params={**step.params, "access_expires_at": past}))
        db.commit()
    assert not active(demo_network, left.access) and active(demo_network, left.refresh)
    return left, step.id


def meta_style(worker, graph_url: str) -> None:
    """The worker's catalogue with Demo Social revoked the way Meta revokes."""
    demo = worker.ctx.networks["demo"]
    styled = dataclasses.replace(demo, revocation=Revocation("meta", f"{graph_url}/{{account_id}}/permissions"))
    worker.ctx = dataclasses.replace(worker.ctx, networks=Networks({**worker.ctx.networks, "demo": styled}))


def revoke_step(sessions, step_id: str) -> ErasureStep:
    with sessions() as db:
        return db.get(ErasureStep, step_id)


def test_an_expired_access_token_is_refreshed_before_meta_style_revocation(expired_optout, worker, sessions,
                                                                           demo_network):
    left, step_id = expired_optout
    with strict(demo_network, "DEMO_ROTATE_REFRESH_TOKENS"), serve(create_graph_on_demo(demo_network)) as graph:
        meta_style(worker, graph.url)
        worker.run_once()

    step = revoke_step(sessions, step_id)
    assert step.status == "done" and step.result["outcome"] == "revoked", (step.status, step.result, step.last_error)
    assert live_tokens(demo_network, ACCOUNT) == 0  # the grant really ended at the network, not just "expired"


def test_the_rotated_refresh_token_is_kept_on_the_step_for_a_retry(expired_optout, worker, sessions, vault,
                                                                   demo_network):
    left, step_id = expired_optout
    with strict(demo_network, "DEMO_ROTATE_REFRESH_TOKENS"), \
            serve(create_graph_on_demo(demo_network, fail_first=1)) as graph:
        meta_style(worker, graph.url)
        worker.run_once()  # refreshed, then the network is down: the step waits for a retry

        step = revoke_step(sessions, step_id)
        assert step.status == "retrying", (step.status, step.last_error)

        kept = vault.open(base64.b64decode(step.params["refresh_token"]))
        assert kept != left.refresh and active(demo_network, kept)
        assert not active(demo_network, left.refresh)  # spent by the refresh: only the stored one still works

        with sessions() as db:  # the retry is due now
            db.execute(update(ErasureStep).where(ErasureStep.id == step_id).values(not_before=utcnow()))
            db.commit()
        worker.run_once()

    step = revoke_step(sessions, step_id)
    assert step.status == "done" and step.result["outcome"] == "revoked", (step.status, step.result, step.last_error)
    assert live_tokens(demo_network, ACCOUNT) == 0
