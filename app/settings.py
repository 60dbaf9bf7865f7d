"""Settings: config/defaults.toml, overridden by OWNSTORY_* environment variables, plus secrets."""
from __future__ import annotations

import logging
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = ROOT / "config" / "defaults.toml"
MAX_DEADLINE_DAYS = 30
MAX_PROXY_HOPS = 5
# The rate limiter's storages that requirements.txt can drive: each process's memory, or a Redis server.
LIMITER_SCHEMES = {"memory", "redis", "rediss", "redis+unix"}

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration mistake, said in words that name the file (or variable) and the field."""

    def __init__(self, where: str, field: str, problem: str) -> None:
        super().__init__(f"{where}: {field}: {problem}")
        self.where, self.field, self.problem = where, field, problem


@dataclass(frozen=True)
class Secret:
    env: str
    file: str
    make: Callable[[], str]


SECRETS = {
    "SECRET_KEY": Secret("OWNSTORY_SECRET_KEY", "secret_key", lambda: secrets.token_urlsafe(48)),
    "TOKEN_KEYS": Secret("OWNSTORY_TOKEN_KEYS", "token_keys", lambda: Fernet.generate_key().decode()),
    "PEPPER": Secret("OWNSTORY_PEPPER", "pepper", lambda: secrets.token_urlsafe(48)),
}


def _bool(where: str, field: str, raw) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(where, field, f"expected 1 or 0 (true or false), got {raw!r}")


def _int(where: str, field: str, raw) -> int:
    try:
        if isinstance(raw, bool):
            raise ValueError
        return int(str(raw).strip())
    except ValueError:
        raise ConfigError(where, field, f"expected a whole number, got {raw!r}") from None


def _path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def resolve_database_url(url: str) -> str:
    """Resolve a relative SQLite path against the project folder, not the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
        rest = url[len(prefix):]
        if not rest.startswith(":memory:"):
            path = _path(rest)
            path.parent.mkdir(parents=True, exist_ok=True)
            return prefix + str(path)
    return url


def load(environ: Mapping[str, str] | None = None, instance_path: Path | None = None) -> dict:
    """Read every setting once, at app creation. Raises ConfigError naming the culprit."""
    environ = os.environ if environ is None else environ
    try:
        defaults = tomllib.loads(DEFAULTS_FILE.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(DEFAULTS_FILE), "(file)", str(exc)) from None

    def get(key: str):
        name = "OWNSTORY_" + key.upper()
        if name in environ:
            return name, environ[name]
        return f"{DEFAULTS_FILE.name}", defaults.get(key)

    cfg: dict = {}
    where, env = get("env")
    if env not in {"development", "production", "testing"}:
        raise ConfigError(where, "OWNSTORY_ENV", f"expected development or production, got {env!r}")
    cfg["ENV_NAME"] = env
    cfg["DATABASE_URL"] = resolve_database_url(str(get("database_url")[1]))
    where, base = get("base_url")
    parts = urlsplit(str(base))
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(where, "OWNSTORY_BASE_URL", f"expected an http(s) URL, got {base!r}")
    cfg["BASE_URL"] = str(base).rstrip("/")
    for key in ("networks", "datamap", "purposes"):
        cfg[f"{key.upper()}_FILE"] = _path(str(get(key)[1]))
    cfg["INLINE_WORKER"] = _bool(get("inline_worker")[0], "OWNSTORY_INLINE_WORKER", get("inline_worker")[1])
    cfg["DEMO"] = _bool(get("demo")[0], "OWNSTORY_DEMO", get("demo")[1])
    where, days = get("erasure_deadline_days")
    days = _int(where, "OWNSTORY_ERASURE_DEADLINE_DAYS", days)
    if not 1 <= days <= MAX_DEADLINE_DAYS:
        raise ConfigError(where, "OWNSTORY_ERASURE_DEADLINE_DAYS",
                          f"must be between 1 and {MAX_DEADLINE_DAYS} days (it may be lower, never higher)")
    cfg["ERASURE_DEADLINE_DAYS"] = days
    origin = str(get("log_origin")[1] or "")
    cfg["LOG_ORIGIN"] = origin or f"{parts.netloc}/ownstory/receipts"
    cfg["SMTP_URL"] = str(get("smtp_url")[1] or "")
    # This service's business-id in the Data Rights Protocol: by default, the base URL's host.
    cfg["DRP_BUSINESS_ID"] = str(get("drp_business_id")[1] or "").strip() or str(parts.hostname)
    cfg["PLATFORM_NAME"], cfg["PLATFORM_CONTACT"] = _platform(get("platform_name"), get("platform_contact"))
    where, lease = get("erasure_lease_seconds")
    cfg["ERASURE_LEASE_SECONDS"] = _int(where, "OWNSTORY_ERASURE_LEASE_SECONDS", lease)
    if cfg["ERASURE_LEASE_SECONDS"] < 1:
        raise ConfigError(where, "OWNSTORY_ERASURE_LEASE_SECONDS", "must be at least 1 second")
    where, base = get("erasure_retry_base_seconds")
    try:
        cfg["ERASURE_RETRY_BASE_SECONDS"] = float(base)
    except (TypeError, ValueError):
        raise ConfigError(where, "OWNSTORY_ERASURE_RETRY_BASE_SECONDS", f"expected seconds, got {base!r}") from None
    where, hops = get("trusted_proxies")
    cfg["TRUSTED_PROXIES"] = _int(where, "OWNSTORY_TRUSTED_PROXIES", hops)
    if not 0 <= cfg["TRUSTED_PROXIES"] <= MAX_PROXY_HOPS:
        raise ConfigError(where, "OWNSTORY_TRUSTED_PROXIES",
                          f"expected the number of proxies in front of Ownstory, 0 to {MAX_PROXY_HOPS}")
    where, storage = get("ratelimit_storage_url")
    cfg["RATELIMIT_STORAGE_URL"] = _limiter_storage(where, str(storage or "").strip() or "memory://")

    instance = instance_path or ROOT / "instance"
    for key, secret in SECRETS.items():
        value = environ.get(secret.env, "").strip()
        if not value:
            if env == "production":
                raise ConfigError("environment", secret.env,
                                  "is required when OWNSTORY_ENV=production (no secret is generated there)")
            value = _instance_secret(instance, secret)
        cfg[key] = value
    cfg["TOKEN_KEYS"] = _fernet_keys(cfg["TOKEN_KEYS"])
    return cfg


def _platform(name_setting: tuple[str, object], contact_setting: tuple[str, object]) -> tuple[str, str]:
    """The platform whose data Ownstory looks after, as people read it on pages, mails and receipts: its
    name, and where to ask it (an email address or an https page; empty for none)."""
    where, name = name_setting
    name = " ".join(str(name or "").split())
    if not name or len(name) > 80:
        raise ConfigError(where, "OWNSTORY_PLATFORM_NAME", "expected the platform's name, 1 to 80 characters")
    where, contact = contact_setting
    contact = str(contact or "").strip()
    parts = urlsplit(contact)
    if contact and not (_is_address(contact) or (parts.scheme in {"http", "https"} and parts.netloc)):
        raise ConfigError(where, "OWNSTORY_PLATFORM_CONTACT",
                          f"expected an email address or an http(s) URL, got {contact!r}")
    return name, contact


def _is_address(text: str) -> bool:
    local, at, domain = text.partition("@")
    return bool(at and local and "." in domain and not any(c.isspace() or c in "<>,;:\"\\" for c in text))


def _limiter_storage(where: str, url: str) -> str:
    """A storage URL Flask-Limiter can use. Never echoed: a Redis URL may carry a password."""
    example = "expected memory:// or redis://host:port/db (rediss:// for TLS, redis+unix:///path for a socket)"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError(where, "OWNSTORY_RATELIMIT_STORAGE_URL", f"is not a URL; {example}") from None
    if parts.scheme not in LIMITER_SCHEMES:
        raise ConfigError(where, "OWNSTORY_RATELIMIT_STORAGE_URL",
                          f"the scheme {parts.scheme + ':' if parts.scheme else '(none)'} is not supported; {example}")
    if parts.scheme in {"redis", "rediss"}:
        if not parts.hostname:
            raise ConfigError(where, "OWNSTORY_RATELIMIT_STORAGE_URL", f"names no host; {example}")
        if parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise ConfigError(where, "OWNSTORY_RATELIMIT_STORAGE_URL",
                              f"the database after the host must be a number; {example}")
    if parts.scheme == "redis+unix" and not parts.path:
        raise ConfigError(where, "OWNSTORY_RATELIMIT_STORAGE_URL", f"names no socket path; {example}")
    return url


def _fernet_keys(raw: str) -> list[str]:
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    for i, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError("environment", "OWNSTORY_TOKEN_KEYS",
                              f"key {i + 1} is not a Fernet key (32 url-safe base64 bytes)") from None
    if not keys:
        raise ConfigError("environment", "OWNSTORY_TOKEN_KEYS", "no key given")
    return keys


def _instance_secret(instance: Path, secret: Secret) -> str:
    """Development only: keep a generated secret in instance/, readable by its owner alone."""
    path = instance / secret.file
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = secret.make()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    try:
        os.link(tmp, path)  # atomic: if another process won the race, use its secret
    except FileExistsError:
        return path.read_text().strip()
    finally:
        tmp.unlink()
    log.warning("generated a development secret in %s (set %s in production)", path, secret.env)
    return value
