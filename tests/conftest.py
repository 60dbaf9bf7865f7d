"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL when configured),
the app built on it, a live Demo Social network on a loopback port, and signed-in clients."""
from __future__ import annotations

import itertools
import os
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app import create_app
from app.db import Base, make_engine
from app.migrate import upgrade
from app.models_registry import import_all_models
from app.settings import ROOT

pytest_plugins = [
    "tests.helpers_browser",  # the browser_page and live_app fixtures
    "tests.erasure.stores.helpers_billing",  # published_keys, billing_server and billing: the http store's service
    "tests.helpers_behaviours",  # demo_behaviour and the demo_behaviours marker: Demo Social as strict providers
]

TEST_PG = os.environ.get("OWNSTORY_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgresql"] if TEST_PG else [])
BASE_URL = "http://localhost"
PASSWORD = "correct horse battery staple"
DEMO_CLIENT_ID = "ownstory-test"
DEMO_CLIENT_SECRET = "test-only-demo-client-secret"
TOKEN_KEY = "vZ7nM1nq0kq3Z6yYq3xk6m7Jm2Yg3Yl9m0l8o1rGm5E="

import_all_models()


# --- databases -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One migrated SQLite file; each test gets a copy, so migrations are tested and tests are fast."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The configured PostgreSQL database, emptied and migrated once per run."""
    engine = make_engine(TEST_PG)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(TEST_PG)
    return TEST_PG


def _empty_postgres(url: str) -> None:
    """Empty every table for the next test. A connection the test left in a transaction would make
    this wait forever: it fails the test instead, naming what was left open, and is ended."""
    engine = make_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '15s'"))
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    except OperationalError:
        with engine.begin() as conn:
            left = conn.execute(text(
                "SELECT pg_terminate_backend(pid), left(query, 200) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in%'")).all()
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        pytest.fail(f"the test left database transactions open: {[q for _, q in left]}")
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "ownstory.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
        yield url
        _empty_postgres(url)


# --- Demo Social and the platform store --------------------------------------------------------

@pytest.fixture(scope="session")
def demo_network():
    """Demo Social, a real Authlib OAuth server, on a loopback port for the whole run."""
    from demo.server import create_demo_app
    from tests.helpers_servers import serve

    demo_app = create_demo_app({
        "DEMO_CLIENTS": [{
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "redirect_uris": [f"{BASE_URL}{path}/demo/callback"
                              for path in ("/networks", "/forget/networks", "/drp/verify/networks")],
            "scope": "profile posts",
            "token_endpoint_auth_method": "client_secret_basic",
        }],
    })
    server = serve(demo_app)
    yield server
    server.stop()


@pytest.fixture
def demo_state(demo_network):
    """Demo Social's own state: its faults to set, the calls it counted, its sessions and lock."""
    return demo_network.app.extensions["demo"]


@pytest.fixture(autouse=True)
def _demo_faults_cleared(request):
    yield
    if "demo_network" in request.fixturenames:
        server = request.getfixturevalue("demo_network")
        server.app.extensions["demo"].faults.clear()
        if not server.running:
            server.start()


def networks_toml(demo_url: str) -> str:
    return f"""
[networks.demo]
name = "Demo Social"
authorize_url = "{demo_url}/oauth/authorize"
token_url = "{demo_url}/oauth/token"
userinfo_url = "{demo_url}/userinfo"
account_id_field = "sub"
handle_field = "preferred_username"
scopes = ["profile", "posts"]
client_id = "{DEMO_CLIENT_ID}"
client_secret = "{DEMO_CLIENT_SECRET}"
token_endpoint_auth = "client_secret_basic"

[networks.demo.revocation]
style = "rfc7009"
url = "{demo_url}/oauth/revoke"
"""


BILLING_STORE = '[[stores]]\nname = "billing"'
PLATFORM_STORE = '[[stores]]\nname = "platform"'


def takes_at_once(path: Path, section: str, max_in_flight: int) -> None:
    """A catalogue's or a data map's section (its first lines, as written) says how many calls it takes at once:
    "[networks.demo.revocation]", BILLING_STORE or PLATFORM_STORE. Before the app (or a worker) reads the file."""
    text = path.read_text()
    assert section + "\n" in text, f"{path.name} has no {section!r}"
    path.write_text(text.replace(section + "\n", f"{section}\nmax_in_flight = {max_in_flight}\n", 1))


def shipped_tables() -> str:
    """The shipped data map without its billing service, which is last: the tests' apps have no Demo Billing
    to call (tests/erasure/stores/helpers_billing.py serves one to the tests that add it back)."""
    tables, found, _service = (ROOT / "config" / "datamap.toml").read_text().partition(BILLING_STORE)
    assert found, f"config/datamap.toml no longer ends with {BILLING_STORE!r}"
    return tables


@pytest.fixture(scope="session")
def platform_template(tmp_path_factory) -> Path:
    from demo.platform import seed_platform_store

    path = tmp_path_factory.mktemp("platform") / "platform.db"
    seed_platform_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def platform_url(tmp_path, platform_template) -> str:
    path = tmp_path / "platform.db"
    shutil.copyfile(platform_template, path)
    return f"sqlite:///{path}"


# --- the app -----------------------------------------------------------------------------------

@pytest.fixture
def config_files(tmp_path, demo_network, demo_behaviour, platform_url) -> dict[str, Path]:
    networks = tmp_path / "networks.toml"
    networks.write_text(demo_behaviour.catalogue(demo_network.url))
    datamap = tmp_path / "datamap.toml"
    datamap.write_text(shipped_tables().replace('"sqlite:///instance/platform.db"', f'"{platform_url}"'))
    purposes = tmp_path / "purposes.toml"
    shutil.copyfile(ROOT / "config" / "purposes.toml", purposes)
    return {"networks": networks, "datamap": datamap, "purposes": purposes}


@pytest.fixture
def test_environ(config_files, tmp_path) -> dict[str, str]:
    return {
        "OWNSTORY_ENV": "testing",
        "OWNSTORY_BASE_URL": BASE_URL,
        "OWNSTORY_SECRET_KEY": "test-secret-key-not-for-production",
        "OWNSTORY_TOKEN_KEYS": TOKEN_KEY,
        "OWNSTORY_PEPPER": "test-pepper-not-for-production",
        "OWNSTORY_NETWORKS": str(config_files["networks"]),
        "OWNSTORY_DATAMAP": str(config_files["datamap"]),
        "OWNSTORY_PURPOSES": str(config_files["purposes"]),
        "OWNSTORY_SMTP_URL": "",
    }


@pytest.fixture
def make_app(database_url, test_environ, tmp_path):
    """Build an app on the test database; keyword arguments override environment variables."""
    apps = []

    def build(test_config: dict | None = None, **environ):
        env = {**test_environ, **{f"OWNSTORY_{k.upper()}": str(v) for k, v in environ.items()}}
        config = {"TESTING": True, "DATABASE_URL": database_url, "FAST_PASSWORD_HASHING": True,
                  "RATELIMIT_ENABLED": False, "OUTBOX_PATH": tmp_path / "outbox",
                  "ERASURE_RETRY_BASE_SECONDS": 0.01, **(test_config or {})}
        built = create_app(config, environ=env)
        apps.append(built)
        return built

    yield build
    for built in apps:
        built.extensions["ownstory_db"]["engine"].dispose()
        built.extensions["datamap"].dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def db_session(app) -> Session:
    """A new session on the app's database, for a helper given the app: `with db_session(app) as db:`.

    Of its own, not the app context's, which requests of the test client would share (its `g`, so
    Flask-WTF's cached CSRF token, and the db session). Tests take the `sessions` fixture instead.
    """
    return app.extensions["ownstory_db"]["sessionmaker"]()


@pytest.fixture
def sessions(app) -> sessionmaker[Session]:
    """New sessions on the app's database, each of its own: `with sessions() as db:`."""
    return app.extensions["ownstory_db"]["sessionmaker"]


@pytest.fixture
def session(sessions):
    """One session of its own for the whole test: not the app context's (see db_session)."""
    with sessions() as own:
        yield own


@pytest.fixture
def vault(app):
    """The app's token vault: what seals grants' tokens and the identities of a request."""
    return app.extensions["ownstory_vault"]


# --- people, tokens and forms ------------------------------------------------------------------

_emails = itertools.count(1)


@pytest.fixture
def make_person(app):
    from app.accounts import create_user
    from app.extensions import db

    def make(email: str | None = None, password: str = PASSWORD, role: str = "person"):
        with app.app_context():
            user = create_user(db.session, email or f"person{next(_emails)}@example.org", password, role=role)
            db.session.commit()
            db.session.expunge(user)
            user.password = password
            return user

    return make


CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no csrf_token field"
    return match.group(1)


@pytest.fixture
def csrf_post():
    """POST a form the way a browser does: fetch the page first, send its CSRF token back."""

    def post(client, path: str, data: dict | None = None, page: str | None = None, **kwargs):
        html = client.get(page or path).get_data(as_text=True)
        return client.post(path, data={**(data or {}), "csrf_token": csrf_token_from(html)}, **kwargs)

    return post


@pytest.fixture
def login(csrf_post):
    def sign_in(client, user, password: str | None = None):
        response = csrf_post(client, "/login", {"email": user.email, "password": password or user.password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return sign_in


@pytest.fixture
def signed_in(app, make_person, login):
    """A client signed in with a role, or anonymous (None)."""

    def make(role: str | None):
        client = app.test_client()
        if role is not None:
            user = make_person(role=role)
            login(client, user)
            client.user = user
        return client

    return make


@pytest.fixture
def api_token(app):
    """A bearer token for a role, made the way `flask tokens create` makes it."""

    def make(role: str, name: str = "test") -> str:
        result = app.test_cli_runner().invoke(args=["tokens", "create", "--role", role, "--name", name])
        assert result.exit_code == 0, result.output
        return result.output.strip()

    return make


@pytest.fixture
def service_headers(api_token) -> dict[str, str]:
    """What a platform's program sends: a service token."""
    return {"Authorization": f"Bearer {api_token('service')}"}


@pytest.fixture
def operator_headers(api_token) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token('operator')}"}
