"""`make run`'s web server: the app on loopback, announced in one plain line with the address to open."""
from __future__ import annotations

import argparse
import sys

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server


class _Handler(WSGIRequestHandler):
    """Leaves each request's line to the app's access log, which carries the request id and never the
    query string (a status link's k is a capability)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def serve(app: Flask, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wsgi", description="Serve Ownstory for trying it out.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=_Handler)
    # The base URL is what every link and OAuth callback is built from: that is the address to open.
    print(f"Ownstory is running: open {app.config['BASE_URL']} in your browser (Ctrl-C stops it).", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.stdout.write("\n")
    finally:
        server.server_close()
