"""The WSGI entry point: the only module that builds the app when imported."""
import sys

from app import create_app
from app.settings import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # A configuration mistake is a message naming the file and field, not a stack trace.
    sys.stderr.write(f"ownstory: configuration error: {exc}\n")
    raise SystemExit(2) from None

if __name__ == "__main__":  # make run: one plain line with the address, not a development server's banner
    from app.serve import serve

    serve(app)
