"""Configuration: defaults, environment overrides, secrets, and clear messages for mistakes."""
import os
import stat
import subprocess
import sys

import pytest

from app import settings
from app.settings import ROOT, ConfigError

SECRETS = {
    "OWNSTORY_SECRET_KEY": "s" * 40,
    "OWNSTORY_TOKEN_KEYS": "vZ7nM1nq0kq3Z6yYq3xk6m7Jm2Yg3Yl9m0l8o1rGm5E=",
    "OWNSTORY_PEPPER": "p" * 40,
}


def test_defaults_follow_the_contract(tmp_path):
    cfg = settings.load(dict(SECRETS), instance_path=tmp_path)
    assert cfg["ENV_NAME"] == "development"
    assert cfg["BASE_URL"] == "http://127.0.0.1:5000"
    assert cfg["DATABASE_URL"] == f"sqlite:///{ROOT / 'instance' / 'ownstory.db'}"
    assert cfg["ERASURE_DEADLINE_DAYS"] == 30
    assert cfg["LOG_ORIGIN"] == "127.0.0.1:5000/ownstory/receipts"
    assert cfg["INLINE_WORKER"] is False and cfg["DEMO"] is False
    assert cfg["NETWORKS_FILE"] == ROOT / "config" / "networks.toml"


def test_environment_overrides(tmp_path):
    cfg = settings.load({**SECRETS, "OWNSTORY_BASE_URL": "https://own.example.org/",
                         "OWNSTORY_ERASURE_DEADLINE_DAYS": "7", "OWNSTORY_DEMO": "1",
                         "OWNSTORY_TOKEN_KEYS": SECRETS["OWNSTORY_TOKEN_KEYS"] + ", " + SECRETS["OWNSTORY_TOKEN_KEYS"]},
                        instance_path=tmp_path)
    assert cfg["BASE_URL"] == "https://own.example.org"
    assert cfg["LOG_ORIGIN"] == "own.example.org/ownstory/receipts"
    assert cfg["ERASURE_DEADLINE_DAYS"] == 7
    assert cfg["DEMO"] is True
    assert len(cfg["TOKEN_KEYS"]) == 2


@pytest.mark.parametrize("name, value, field", [
    ("OWNSTORY_ERASURE_DEADLINE_DAYS", "31", "OWNSTORY_ERASURE_DEADLINE_DAYS"),
    ("OWNSTORY_ERASURE_DEADLINE_DAYS", "soon", "OWNSTORY_ERASURE_DEADLINE_DAYS"),
    ("OWNSTORY_DEMO", "maybe", "OWNSTORY_DEMO"),
    ("OWNSTORY_BASE_URL", "ftp://x", "OWNSTORY_BASE_URL"),
    ("OWNSTORY_ENV", "prod", "OWNSTORY_ENV"),
    ("OWNSTORY_TOKEN_KEYS", "not-a-key", "OWNSTORY_TOKEN_KEYS"),
])
def test_a_bad_value_names_the_variable(tmp_path, name, value, field):
    with pytest.raises(ConfigError) as err:
        settings.load({**SECRETS, name: value}, instance_path=tmp_path)
    assert err.value.field == field
    if name == "OWNSTORY_TOKEN_KEYS":
        assert value not in str(err.value)  # a secret is never echoed


def test_production_refuses_to_generate_secrets(tmp_path):
    env = {**SECRETS, "OWNSTORY_ENV": "production"}
    del env["OWNSTORY_PEPPER"]
    with pytest.raises(ConfigError, match="OWNSTORY_PEPPER"):
        settings.load(env, instance_path=tmp_path)
    assert not (tmp_path / "pepper").exists()


def test_development_generates_private_secrets_once(tmp_path):
    first = settings.load({}, instance_path=tmp_path)
    second = settings.load({}, instance_path=tmp_path)
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and first["PEPPER"] == second["PEPPER"]
    for name in ("secret_key", "token_keys", "pepper"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_a_broken_catalogue_stops_startup_with_a_message_not_a_trace(tmp_path):
    broken = tmp_path / "networks.toml"
    broken.write_text('[networks.acme]\nname = "Acme"\nauthorize_url = 42\n')
    env = {**os.environ, **SECRETS, "OWNSTORY_NETWORKS": str(broken)}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert str(broken) in result.stderr and "networks.acme" in result.stderr
    assert "Traceback" not in result.stderr


def test_proxies_and_limiter_storage_default_to_off_and_memory(tmp_path):
    cfg = settings.load(dict(SECRETS), instance_path=tmp_path)
    assert cfg["TRUSTED_PROXIES"] == 0
    assert cfg["RATELIMIT_STORAGE_URL"] == "memory://"
    cfg = settings.load({**SECRETS, "OWNSTORY_TRUSTED_PROXIES": "2",
                         "OWNSTORY_RATELIMIT_STORAGE_URL": "redis://127.0.0.1:6379/0"}, instance_path=tmp_path)
    assert cfg["TRUSTED_PROXIES"] == 2 and cfg["RATELIMIT_STORAGE_URL"] == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("name, value", [
    ("OWNSTORY_TRUSTED_PROXIES", "-1"),
    ("OWNSTORY_TRUSTED_PROXIES", "nginx"),
    ("OWNSTORY_TRUSTED_PROXIES", "99"),
    ("OWNSTORY_RATELIMIT_STORAGE_URL", "memcached://127.0.0.1:11211"),
    ("OWNSTORY_RATELIMIT_STORAGE_URL", "127.0.0.1:6379"),
    ("OWNSTORY_RATELIMIT_STORAGE_URL", "redis://"),
    ("OWNSTORY_RATELIMIT_STORAGE_URL", "redis://:s3cret-pw@cache:port/0"),
    ("OWNSTORY_RATELIMIT_STORAGE_URL", "redis://:s3cret-pw@cache:6379/zero"),
])
def test_a_bad_proxy_count_or_storage_url_names_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError) as err:
        settings.load({**SECRETS, name: value}, instance_path=tmp_path)
    assert err.value.field == name
    assert "s3cret-pw" not in str(err.value)  # a Redis URL may carry a password: never echoed


def test_a_bad_storage_url_stops_startup_with_one_line(tmp_path):
    env = {**os.environ, **SECRETS, "OWNSTORY_RATELIMIT_STORAGE_URL": "redis://:s3cret-pw@cache:port/0"}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("ownstory: configuration error: ") and result.stderr.count("\n") == 1
    assert "OWNSTORY_RATELIMIT_STORAGE_URL" in result.stderr and "s3cret-pw" not in result.stderr
