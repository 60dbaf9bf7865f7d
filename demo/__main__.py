"""Serves Demo Social alone on 127.0.0.1:9000 with one ready client, for trying it by hand."""

from __future__ import annotations

import argparse

from .server import create_demo_app

DEV_CLIENT = {
    "client_id": "demo-client",
    "client_secret": "demo-secret",
    "client_name": "Ownstory (local)",
    "redirect_uris": [
        "http://127.0.0.1:5000/networks/demo/callback",
        "http://127.0.0.1:8000/callback",
    ],
    "scope": "profile posts",
    "token_endpoint_auth_method": "client_secret_basic",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--database", default="sqlite://", help="SQLAlchemy URL of the provider's store")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="how long every answer takes, as a network across the internet would (default 0)")
    args = parser.parse_args()
    if not 0 <= args.latency_ms <= 10_000:
        parser.error("--latency-ms must be from 0 to 10000")
    app = create_demo_app({"DEMO_DATABASE_URL": args.database, "DEMO_CLIENTS": [DEV_CLIENT],
                           "DEMO_LATENCY": args.latency_ms / 1000})
    print(f"Demo Social on http://127.0.0.1:{args.port} (client: see DEV_CLIENT in demo/__main__.py)")
    app.run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
