"""Agents registered by an operator, and the pairwise key setup: a fresh bearer token for a message signed right."""
from __future__ import annotations

import base64
import datetime as dt
import json

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from erasure.agents.models import AgentToken


def test_an_operator_registers_lists_and_disables_an_agent_and_the_audit_trail_says_so(served):
    agent = served.register("CR_AGENT")
    listed = served.cli("agents", "list")
    assert "CR_AGENT" in listed.output and "enabled" in listed.output and agent.verify_key_hex in listed.output
    assert agent.setup().status_code == 200
    assert agent.info().status_code == 200

    assert served.cli("agents", "disable", "CR_AGENT").exit_code == 0
    assert "disabled" in served.cli("agents", "list").output
    assert agent.info().status_code == 403  # its tokens ended with it
    assert agent.setup().status_code == 403
    with served.app.app_context():
        actions = [(e.action, e.target) for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert ("agent_add", "CR_AGENT") in actions and ("agent_disable", "CR_AGENT") in actions


def test_a_bad_verify_key_or_id_is_refused_with_a_message(served):
    bad_key = served.cli("agents", "add", "--id", "X", "--verify-key", "abc", "--name", "X")
    assert bad_key.exit_code != 0 and "64 hex digits" in bad_key.output
    bad_id = served.cli("agents", "add", "--id", "no spaces", "--verify-key", "00" * 32, "--name", "X")
    assert bad_id.exit_code != 0 and "--id" in bad_id.output
    nobody = served.cli("agents", "disable", "NOBODY")
    assert nobody.exit_code != 0 and "no agent" in nobody.output


def test_key_setup_answers_a_token_kept_only_as_a_hash_and_get_agent_checks_it(served):
    agent = served.register()
    answer = agent.setup()
    assert answer.status_code == 200
    assert answer.json()["agent-id"] == agent.agent_id
    token = answer.json()["token"]
    with served.app.app_context():
        stored = [t.token_hash for t in db.session.scalars(select(AgentToken))]
    assert stored and token not in stored
    info = agent.info()
    assert info.status_code == 200 and info.json() == {}
    assert agent.info(token="drp_not-a-token").status_code == 403
    assert agent.http.get(f"{served.base}/drp/v1/agent/{agent.agent_id}", timeout=5).status_code == 403


def test_get_agent_with_another_agents_token_is_403(served):
    mine, theirs = served.register("MINE"), served.register("THEIRS")
    mine.setup()
    theirs.setup()
    assert mine.info(agent_id="THEIRS").status_code == 403
    assert theirs.info(agent_id="THEIRS").status_code == 200


def test_every_failed_key_setup_is_a_bare_403(served):
    agent = served.register()
    other = served.register("OTHER")
    now = dt.datetime.now(dt.UTC)
    v = {"drp.version": "1.0"}
    bodies = {
        "not base64": b"%%%not base64%%%",
        "unsigned": base64.b64encode(json.dumps(agent.envelope(**v)).encode()),
        "wrong key": agent.sign(agent.envelope(**v), key=other.key),
        "another agent's id": agent.sign({**agent.envelope(**v), "agent-id": "OTHER"}),
        "another business": agent.sign({**agent.envelope(**v), "business-id": "elsewhere.example"}),
        "expired": agent.sign(agent.envelope(issued=now - dt.timedelta(minutes=12), **v)),
        "too long": agent.sign(agent.envelope(minutes=16, **v)),
        "from the future": agent.sign(agent.envelope(issued=now + dt.timedelta(minutes=5), **v)),
        "not JSON": agent.sign(b"not json"),
    }
    for what, body in bodies.items():
        answer = agent.setup(body)
        assert (answer.status_code, answer.content) == (403, b""), what
    assert agent.setup(agent.sign(agent.envelope(**v)), agent_id="NOBODY").status_code == 403

    once = agent.sign(agent.envelope(**v))
    assert agent.setup(once).status_code == 200
    assert agent.setup(once).status_code == 403  # the same signed message, again
