"""Rate limits: where they are counted, whose they are, and what a refused person is told.

Each limit says per what it counts: per client address (Flask-Limiter's default key, which is the
real client's only behind OWNSTORY_TRUSTED_PROXIES), or per account, for what a signed-in person
does. Leaving is never limited per address: on a shared address, one person's leaving must not
use up another's.
"""
from __future__ import annotations

import datetime as dt
import logging
import time

from flask import Flask, current_app, render_template
from flask_login import current_user
from limits.errors import ConfigurationError
from limits.storage.redis import RedisStorage
from werkzeug.exceptions import TooManyRequests

from app.errors import error_json, wants_json
from app.extensions import limiter
from app.security import hmac_hex
from app.settings import ConfigError

log = logging.getLogger(__name__)

# A Redis server that cannot be reached must not hold a page up for long: the limiter then
# counts in this process's memory until the server is back (see init_app).
REDIS_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 2}
FALLBACK_WAIT = 60  # seconds to promise when the limiter cannot say when its window ends
REDIS_KEYS = f"{RedisStorage.PREFIX}:*"  # the keys of the counts on a Redis server


def init_app(app: Flask) -> None:
    """Point Flask-Limiter at OWNSTORY_RATELIMIT_STORAGE_URL, bind it, and answer 429s our way."""
    url = app.config["RATELIMIT_STORAGE_URL"]
    app.config["RATELIMIT_STORAGE_URI"] = url
    # Flask-Limiter's documented fallback: while the shared storage is unreachable, each process
    # counts the same limits in its own memory (looser by the number of processes, never a 500),
    # and goes back to the shared storage once it answers again.
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    if not url.startswith("memory:"):
        app.config["RATELIMIT_STORAGE_OPTIONS"] = dict(REDIS_TIMEOUTS)
    try:
        limiter.init_app(app)
    except (ConfigurationError, ValueError, ImportError):
        # The URL is not echoed: it may carry the Redis password.
        raise ConfigError("environment", "OWNSTORY_RATELIMIT_STORAGE_URL",
                          "Flask-Limiter cannot use this storage URL (expected redis://host:port/db)") from None
    app.register_error_handler(429, refused)


def account_key() -> str:
    """A per-account limit's key: the signed-in user's id (never an email)."""
    return f"account:{current_user.get_id()}"


def private_key(prefix: str, text: str) -> str:
    """A limit's key for something private (an address, what a person proved): an HMAC under the session
    secret, so the limiter's storage never holds it."""
    return f"{prefix}:{hmac_hex(current_app.config['SECRET_KEY'], text)}"


def signed_out() -> bool:
    """exempt_when for per-account limits: a visitor without an account is sent to sign in instead."""
    return not current_user.is_authenticated


def retry_at(now: float | None = None) -> dt.datetime:
    """When the limit that refused this request lets the next one through."""
    now = time.time() if now is None else now
    reset: float = 0
    try:
        current = limiter.current_limit
        reset = current.reset_at if current is not None else 0
    except Exception:  # noqa: BLE001 (the storage may be down: promise a minute rather than fail the page)
        log.warning("the rate limiter could not say when its window ends")
    if reset <= now:
        reset = now + FALLBACK_WAIT
    return dt.datetime.fromtimestamp(reset, dt.UTC)


def refused(exc: TooManyRequests):
    """Every 429: the contract's JSON under /api/, elsewhere a page that says what happened in plain words."""
    at = retry_at()
    wait = max(1, int((at - dt.datetime.now(dt.UTC)).total_seconds() + 0.999))
    # A limit may say in its own words what it guards (error_message); the page says that first.
    limit = getattr(exc, "limit", None)
    reason = exc.description if limit is not None and limit.error_message else None
    headers = {"Retry-After": str(wait)}
    if wants_json():
        return error_json(429, "rate_limited",
                          f"Too many requests. Nothing was changed. Try again in {wait} seconds.", headers=headers)
    minutes = max(1, (wait + 59) // 60)
    page = render_template("rate_limited.html", title="Please wait a moment", at=at, minutes=minutes, reason=reason)
    return page, 429, headers
