"""`flask agents add|list|disable`: the authorized agents an operator registers, each change in the audit trail."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from app import audit
from app.db import utcnow
from app.extensions import db
from erasure.agents import registry

agents_cli = AppGroup("agents", help="Authorized agents of the Data Rights Protocol.")


@agents_cli.command("add")
@click.option("--id", "agent_id", required=True, help="The agent's DRP agent-id.")
@click.option("--verify-key", required=True, help="The agent's Ed25519 verify key, in hex.")
@click.option("--name", required=True, help="The agent's name, as people know it.")
def agents_add(agent_id: str, verify_key: str, name: str) -> None:
    """Register an agent (or give a registered one a new key, name, and its access back)."""
    audit.lock(db.session)  # before the first read: on SQLite the transaction must start as a writer
    try:
        agent = registry.register(db.session, agent_id, verify_key, name, utcnow())
    except registry.RegistryError as exc:
        db.session.rollback()
        raise click.UsageError(str(exc)) from None
    audit.record(db.session, actor_kind="system", actor_id=None, action="agent_add", target=agent.id,
                 details={"verify_key": agent.verify_key.hex()}, now=utcnow())
    db.session.commit()
    click.echo(f"agent {agent.id} registered")


@agents_cli.command("list")
def agents_list() -> None:
    """Every agent: id, state, verify key and name."""
    for agent in registry.listed(db.session):
        state = f"disabled {agent.disabled_at:%Y-%m-%d}" if agent.disabled_at else "enabled"
        click.echo(f"{agent.id}  {state:<19}  {agent.verify_key.hex()}  {agent.name}")


@agents_cli.command("disable")
@click.argument("agent_id")
def agents_disable(agent_id: str) -> None:
    """Refuse an agent from now on; its bearer tokens end at once."""
    audit.lock(db.session)
    try:
        agent = registry.disable(db.session, agent_id, utcnow())
    except registry.RegistryError as exc:
        db.session.rollback()
        raise click.UsageError(str(exc)) from None
    audit.record(db.session, actor_kind="system", actor_id=None, action="agent_disable", target=agent.id, now=utcnow())
    db.session.commit()
    click.echo(f"agent {agent.id} disabled")


def init_app(app: Flask) -> None:
    app.cli.add_command(agents_cli)
