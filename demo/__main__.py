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
    args = parser.parse_args()
    app = create_demo_app({"DEMO_DATABASE_URL": args.database, "DEMO_CLIENTS": [DEV_CLIENT]})
    print(f"Demo Social on http://127.0.0.1:{args.port} (client: see DEV_CLIENT in demo/__main__.py)")
    app.run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
