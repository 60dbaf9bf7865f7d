"""A worker process for the bench: `flask worker`'s own loop, with the mail outbox in the bench's folder.

`flask --app wsgi worker` would mail into instance/outbox, and no setting moves it; this is the only change.
"""
from __future__ import annotations

import argparse

from app import create_app
from erasure.engine.scheduler import run_forever
from erasure.engine.worker import THREADS


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--tick", type=float, default=1.0)
    args = parser.parse_args()
    app = create_app({"OUTBOX_PATH": args.outbox})  # every other setting comes from OWNSTORY_* variables
    print("ready", flush=True)
    with app.app_context():
        run_forever(app, threads=args.threads, tick=args.tick)


if __name__ == "__main__":
    main()
