"""Fixtures for the agents' tests: Ownstory served on a loopback port, and a registered agent that talks to it."""
from __future__ import annotations

import pytest

from app.accounts import create_user
from app.extensions import db
from erasure.engine.worker import Worker
from tests.erasure.agents.helpers_agent import Agent, CallbackReceiver
from tests.helpers_browser import free_port
from tests.helpers_servers import LiveServer


class Served:
    def __init__(self, app, base: str) -> None:
        self.app, self.base = app, base

    def cli(self, *args: str):
        return self.app.test_cli_runner().invoke(args=list(args))

    def register(self, agent_id: str = "TEST_AGENT") -> Agent:
        agent = Agent(self.base, agent_id)
        result = self.cli("agents", "add", "--id", agent_id, "--verify-key", agent.verify_key_hex,
                          "--name", f"Agent {agent_id}")
        assert result.exit_code == 0, result.output
        return agent

    def person(self, email: str):
        with self.app.app_context():
            user = create_user(db.session, email, "correct horse battery staple")
            db.session.commit()
            return user.id


@pytest.fixture
def serve(make_app):
    """serve(**config): Ownstory on a loopback port, as `make run` serves it but with no inline worker."""
    servers = []

    def start(config: dict | None = None) -> Served:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        app = make_app(config or {}, base_url=base)
        servers.append(LiveServer(app, port=port).start())
        return Served(app, base)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def served(serve) -> Served:
    return serve()


@pytest.fixture
def agent(served) -> Agent:
    registered = served.register()
    assert registered.setup().status_code == 200
    return registered


@pytest.fixture
def drp_worker(served):
    w = Worker(served.app, threads=2)
    yield w
    w.close()


@pytest.fixture
def receiver():
    r = CallbackReceiver()
    yield r
    r.close()
