"""Erasure's commands: `flask worker` (the worker loop, in a process of its own), `receipts`, `datamap check` and
`keys rotate`."""
from __future__ import annotations

import json
import os
import sys
import tempfile

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cli import register_key_command
from app.db import utcnow
from app.extensions import db
from erasure.agents import cli as agents_cli
from erasure.engine.scheduler import run_forever
from erasure.engine.worker import THREADS
from erasure.models import SigningKey
from erasure.receipts import keys, tlog
from erasure.stores import coverage
from erasure.verifier.verify import main


@click.command("worker")
@click.option("--threads", default=THREADS, show_default=True, type=click.IntRange(1, 64),
              help="Steps run at once in this process (each waits on a network or a store most of its time).")
@click.option("--tick", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds between looks for due work.")
@with_appcontext
def worker_command(threads: int, tick: float) -> None:
    """Run erasure steps until stopped. Start as many as you like, on any machines, against one database."""
    # Flask types current_app as the Flask it stands for; it is a LocalProxy, which has this method.
    run_forever(current_app._get_current_object(), threads=threads, tick=tick)  # type: ignore[attr-defined]


@click.command("rotate")
@with_appcontext
def rotate_keys() -> None:
    """Make a new receipt-signing key current; the old ones stay published for verification."""
    row = keys.rotate(db.session, current_app.extensions["ownstory_vault"], utcnow())
    db.session.commit()
    click.echo(f"new receipt key {row.kid}")


def current_receipt_kid(session: Session) -> str | None:
    """The audit trail's target for `flask keys rotate`: the receipt key now current."""
    return session.scalar(select(SigningKey.kid).where(SigningKey.purpose == "receipt",
                                                       SigningKey.retired_at.is_(None)))


@click.group("receipts")
def receipts_cli() -> None:
    """Deletion receipts."""


@receipts_cli.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--jwks", "jwks_source", help="A JWKS file or URL; by default, this service's own keys.")
@click.option("--log-key", help="The log's verifier key; by default, this service's own.")
@with_appcontext
def receipts_verify(file: str, jwks_source: str | None, log_key: str | None) -> None:
    """Verify a receipt or a bundle, with the same code as `python -m erasure.verify`."""
    key = log_key or tlog.published_verifier_key(db.session, current_app.extensions["ownstory_vault"],
                                                current_app.config["LOG_ORIGIN"], utcnow())
    if jwks_source:
        db.session.commit()
        sys.exit(main([file, "--jwks", jwks_source, "--log-key", key]))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(keys.jwks(db.session), fh)
    db.session.commit()
    try:
        code = main([file, "--jwks", fh.name, "--log-key", key])
    finally:
        os.unlink(fh.name)  # this service's public keys, but still not ours to leave lying around
    sys.exit(code)


@click.group("datamap")
def datamap_cli() -> None:
    """The data map: where the platform keeps data about a person."""


@datamap_cli.command("check")
@click.option("--names", is_flag=True, help="Under a Redis or S3 store, the prefixes of the keys no entry reaches. Off "
                                            "by default: a key's name may name a person, and this output may be kept.")
@with_appcontext
def datamap_check(names: bool) -> None:
    """Name each store's tables the data map leaves out, and those it names that the store lacks; count a Redis or
    S3 store's keys that no entry reaches. Exits 1 if there are any, or a store cannot be asked."""
    found = list(coverage.coverage(current_app.extensions["datamap"]))
    for each in found:
        click.echo(each.describe())
        if names:
            for line in coverage.names(each):
                click.echo(line)
    sys.exit(1 if any(each.wrong for each in found) else 0)


def init_app(app: Flask) -> None:
    """Called by the factory after the base's commands."""
    register_key_command(app, rotate_keys, target=current_receipt_kid)
    app.cli.add_command(worker_command)
    app.cli.add_command(receipts_cli)
    app.cli.add_command(datamap_cli)
    agents_cli.init_app(app)
