"""The `flask` commands: database, accounts, API tokens and keys; feature packages add their own."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from app import audit
from app.accounts import MIN_PASSWORD, create_user
from app.db import utcnow
from app.extensions import db
from app.migrate import upgrade
from app.models import TOKEN_ROLES, USER_ROLES, ApiToken
from app.security import new_api_token, token_hash

db_cli = AppGroup("db", help="The database schema.")
users_cli = AppGroup("users", help="Accounts.")
tokens_cli = AppGroup("tokens", help="API bearer tokens for programs.")
keys_cli = AppGroup("keys", help="Keys: receipt signing and token encryption.")
KEY_COMMAND_TARGETS = "ownstory_key_command_targets"  # app.extensions' audit targets of the features' keys commands


@db_cli.command("upgrade")
@click.argument("revision", default="heads")
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations."""

    upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo("database is at " + revision)


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(USER_ROLES), required=True)
@click.option("--password", help="Prompted for when left out.")
def users_create(email: str, role: str, password: str | None) -> None:
    """Make an account and print its id."""

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.UsageError(f"the password needs at least {MIN_PASSWORD} characters")
    if "@" not in email or len(email) > 320:
        raise click.UsageError("--email must be an email address")
    try:
        user = create_user(db.session, email, password, role=role)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    audit.record(db.session, actor_kind="system", actor_id=None, action="user_create", target=user.id,
                 details={"role": role}, now=utcnow())
    db.session.commit()
    click.echo(user.id)


@tokens_cli.command("create")
@click.option("--role", type=click.Choice(TOKEN_ROLES), required=True)
@click.option("--name", required=True, help="Who or what uses it, e.g. 'scoring pipeline'.")
def tokens_create(role: str, name: str) -> None:
    """Print a new bearer token, once. Only its hash is stored."""
    token = new_api_token()
    row = ApiToken(name=name[:200], role=role, token_hash=token_hash(token))
    db.session.add(row)
    db.session.flush()
    audit.record(db.session, actor_kind="system", actor_id=None, action="token_create", target=row.id,
                 details={"role": role}, now=utcnow())
    db.session.commit()
    click.echo(token)


@tokens_cli.command("list")
def tokens_list() -> None:
    """The tokens' ids, names, roles and use, never the tokens."""
    for t in db.session.scalars(select(ApiToken).order_by(ApiToken.created_at)):
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        click.echo(f"{t.id}  {t.role:<8}  {state:<18}  last used {used}  {t.name}")


@tokens_cli.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id (from `flask tokens list`)."""
    done = cast(CursorResult[Any], db.session.execute(
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow())
    )).rowcount
    if done:
        audit.record(db.session, actor_kind="system", actor_id=None, action="token_revoke", target=token_id,
                     now=utcnow())
    db.session.commit()
    if not done:
        raise click.UsageError(f"no active token with id {token_id}")
    click.echo("revoked")


@keys_cli.result_callback()
@with_appcontext
def _audit_keys(_result, **_params) -> None:
    """The `keys` commands live in the feature packages; each one that succeeds is recorded here, naming as its
    target what the feature's `target(session)` gives (register_key_command)."""
    command = click.get_current_context().invoked_subcommand
    audit.lock(db.session)  # before the first read: on SQLite the transaction must start as a writer
    if command:
        target = current_app.extensions.get(KEY_COMMAND_TARGETS, {}).get(command)
        audit.record(db.session, actor_kind="system", actor_id=None, action=f"keys_{command}".replace("-", "_"),
                     target=target(db.session) if target else None, now=utcnow())
    db.session.commit()


def register_key_command(app: Flask, command: click.Command,
                         target: Callable[[Session], str | None] | None = None) -> None:
    """A feature's `flask keys` command. The audit trail records each run that succeeds, after it, with
    `target(session)` as the event's target, if given (read in the trail's write lock)."""
    keys_cli.add_command(command)
    if target is not None:
        app.extensions.setdefault(KEY_COMMAND_TARGETS, {})[command.name] = target


def init_app(app: Flask) -> None:
    """The base's commands; the factory then lets each feature add its own (their cli.init_app)."""
    app.cli.add_command(audit.audit_cli)
    for group in (db_cli, users_cli, tokens_cli, keys_cli):
        app.cli.add_command(group)
