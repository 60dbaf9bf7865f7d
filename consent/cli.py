"""The consent commands: `flask consent verify-ledger` and `flask keys rotate-tokens`."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import distinct, func, select

from app.cli import register_key_command
from app.extensions import db
from app.security import VaultError
from consent import grants, ledger
from consent.models import ConsentEvent

consent_cli = AppGroup("consent", help="The consent ledger.")



@consent_cli.command("verify-ledger")
@click.option("--subject", help="Check only this person's chain (their Ownstory subject id).")
def verify_ledger(subject: str | None) -> None:
    """Replay every person's hash chain; name the first break per person (exit 1), if any."""
    breaks = ledger.verify(db.session, subject)
    if breaks:
        for b in breaks:  # subject ids and seqs only: never an email
            click.echo(str(b))
        click.echo(f"ledger broken for {len(breaks)} {'person' if len(breaks) == 1 else 'people'}", err=True)
        raise SystemExit(1)
    query = select(func.count(), func.count(distinct(ConsentEvent.subject_id)))
    if subject:
        query = query.where(ConsentEvent.subject_id == subject)
    events, people = db.session.execute(query).one()
    click.echo(f"ledger intact: {events} events, {people} people")


@click.command("rotate-tokens")
@with_appcontext
def rotate_tokens() -> None:
    """Re-encrypt every stored OAuth token under the first OWNSTORY_TOKEN_KEYS key."""

    try:
        count = grants.rotate_tokens(db.session, current_app.extensions["ownstory_vault"])
    except VaultError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"re-encrypted {count} grants' tokens")


def init_app(app: Flask) -> None:
    """Called by the factory after the base's commands."""
    app.cli.add_command(consent_cli)
    register_key_command(app, rotate_tokens)
