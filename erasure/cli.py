"""`flask worker`: the scheduler and worker loop, in a process of its own."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("worker")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Steps run at once in this process.")
@click.option("--tick", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds between looks for due work.")
@with_appcontext
def worker_command(threads: int, tick: float) -> None:
    """Run erasure steps until stopped. Start as many as you like, on any machines, against one database."""
    from erasure.runner import run_forever

    run_forever(current_app._get_current_object(), threads=threads, tick=tick)
