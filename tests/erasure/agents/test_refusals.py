"""Every refusal an agent can meet has the specification's error shape (section 3.06), never a 500."""
from __future__ import annotations

import base64
import datetime as dt
import json

from sqlalchemy import func, select

from app.extensions import db
from erasure.agents.models import AgentRequest

EMAIL = {"email": "someone@example.org", "email_verified": True}


def _refused(answer, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["code"] == str(status) and isinstance(body["message"], str) and body["message"]
    return body["message"]


def _requests(served) -> int:
    with served.app.app_context():
        return db.session.scalar(select(func.count()).select_from(AgentRequest))


def test_every_malformed_unsigned_forged_or_stale_request_is_refused_and_nothing_is_recorded(served, agent):
    other = served.register("OTHER")
    now = dt.datetime.now(dt.UTC)
    message = agent.request_message("deletion", **EMAIL)
    cases = {
        "not base64": (agent.post(b"{not base64}"), 400),
        "empty": (agent.post(b""), 400),
        "unsigned": (agent.post(base64.b64encode(json.dumps(message).encode())), 403),
        "wrong signature": (agent.post(agent.sign(message, key=other.key)), 403),
        "tampered": (agent.post(base64.b64encode(base64.b64decode(agent.sign(message))[:-2] + b" }")), 403),
        "not JSON": (agent.post(agent.sign(b"\xff\xfe")), 400),
        "a list": (agent.post(agent.sign(b"[]")), 400),
        "expired": (agent.post(agent.sign({**message, **agent.envelope(issued=now - dt.timedelta(minutes=11))})), 400),
        "too long": (agent.post(agent.sign({**message, **agent.envelope(minutes=20)})), 400),
        "no times": (agent.post(agent.sign({k: v for k, v in message.items() if k != "expires-at"})), 400),
        "bad time": (agent.post(agent.sign({**message, "issued-at": "yesterday"})), 400),
        "foreign agent-id": (agent.post(agent.sign({**message, "agent-id": "OTHER"})), 403),
        "foreign business": (agent.post(agent.sign({**message, "business-id": "shop.example"})), 403),
        "old version": (agent.post(agent.sign({**message, "drp.version": "0.9"})), 400),
        "unknown exercise": (agent.post(agent.sign({**message, "exercise": "access:specific"})), 400),
        "bad callback": (agent.post(agent.sign({**message, "status_callback": "file:///etc/passwd"})), 400),
        "bad email": (agent.post(agent.sign({**message, "email": ["a@b"]})), 400),
        "bad flag": (agent.post(agent.sign({**message, "email_verified": "yes"})), 400),
        "unknown network": (agent.post(agent.sign({**message, "network_accounts": [{"network": "x"}]})), 400),
        "no token": (agent.post(agent.sign(message), token="none"), 403),
        "unknown token": (agent.post(agent.sign(message), token="drp_forged"), 403),
    }
    for what, (answer, status) in cases.items():
        assert answer.status_code == status, f"{what}: {answer.status_code} {answer.text}"
        _refused(answer, status)
    assert "Unsupported rights actions" in cases["unknown exercise"][0].json()["message"]
    assert _requests(served) == 0


def test_the_other_agents_own_signed_request_with_this_token_is_refused(served, agent):
    other = served.register("OTHER")  # a request of theirs, replayed by someone holding this agent's token
    theirs = other.sign(other.request_message("deletion", **EMAIL))
    _refused(agent.post(theirs), 403)


def test_a_signed_request_is_accepted_once(served, agent):
    body = agent.sign(agent.request_message("deletion", email="unsure@example.org"))
    assert agent.post(body).status_code == 200
    assert "already received" in _refused(agent.post(body), 409)
    assert _requests(served) == 1


def test_a_body_over_the_cap_is_413(served, agent):
    padded = agent.request_message("deletion", **EMAIL, name="x" * 20_000)
    _refused(agent.post(agent.sign(padded)), 413)
    _refused(agent.setup(b"A" * 40_000), 413)  # before any signature is looked at
    assert _requests(served) == 0


def test_a_disabled_agents_token_stops_working_at_once(served, agent):
    assert served.cli("agents", "disable", agent.agent_id).exit_code == 0
    _refused(agent.exercise("deletion", **EMAIL), 403)


def test_each_agent_has_its_own_rate_limit(serve):
    served = serve({"RATELIMIT_ENABLED": True, "DRP_RATE_LIMIT": "5 per minute"})
    agent, other = served.register("BUSY"), served.register("CALM")
    assert agent.setup().status_code == 200 and other.setup().status_code == 200
    codes = [agent.info().status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    message = _refused(agent.exercise("deletion", **EMAIL), 429)
    assert "Nothing was changed" in message
    assert agent.info().headers.get("Retry-After")
    assert other.info().status_code == 200  # another agent is not held back
    fresh = served.register("FRESH")
    assert fresh.setup().status_code == 200  # naming an agent (unauthenticated) does not use up its limit


def test_a_path_or_method_the_protocol_does_not_have_is_answered_in_its_shape(served, agent):
    _refused(agent.http.put(f"{served.base}/drp/v1/data-rights-request", data=b"x", timeout=10), 405)
    _refused(agent.http.get(f"{served.base}/drp/v1/nothing-here", timeout=10), 404)
    page = agent.http.get(f"{served.base}/nothing-here", timeout=10)  # elsewhere, the friendly page as before
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
