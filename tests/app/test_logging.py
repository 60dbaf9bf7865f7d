"""Structured logs: JSON lines with a request id, redaction, and a whole run's logs free of secrets."""
import io
import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app import logging as app_logging
from erasure.engine.worker import Worker
from erasure.verifier import owner
from tests.conftest import DEMO_CLIENT_SECRET, PASSWORD, TOKEN_KEY


@pytest.fixture
def json_lines():
    """The JSON handler that `configure` installs on the root logger, writing into a buffer; removed after."""
    buffer = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = app_logging.configure(logging.DEBUG, stream=buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)


# --- the format ----------------------------------------------------------------------------------

def test_each_line_is_one_json_object(json_lines):
    log = logging.getLogger("ownstory.test")
    log.info("opt-out %s submitted", "abc")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("step failed")
    first, second = json_lines()
    assert set(first) == {"time", "level", "logger", "message"}
    assert (first["level"], first["logger"], first["message"]) == ("INFO", "ownstory.test", "opt-out abc submitted")
    assert first["time"].endswith("Z")
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc"]


def test_every_request_gets_an_access_line_with_its_id(app, client, json_lines):
    response = client.get("/livez?k=c2VjcmV0&next=/me", headers={"X-Request-ID": "lb-42.abc"})
    assert response.headers["X-Request-ID"] == "lb-42.abc"
    [line] = [line for line in json_lines() if line["logger"] == "ownstory.access"]
    assert line["request_id"] == "lb-42.abc"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/livez", 200)
    assert isinstance(line["duration_ms"], float)
    assert "k=" not in json.dumps(line) and "c2VjcmV0" not in json.dumps(line)


@pytest.mark.parametrize("given", ["", "has spaces", "x" * 65, "<script>", "a;b=c", "-leading-dash", "ows_x?k=1"])
def test_an_unsafe_request_id_is_replaced(client, given):
    response = client.get("/livez", headers={"X-Request-ID": given} if given else {})
    ours = response.headers["X-Request-ID"]
    assert ours != given and len(ours) == 32 and ours.isalnum()


def test_lines_logged_during_a_request_carry_its_id(app, json_lines):
    @app.get("/_log_something")
    def log_something():
        logging.getLogger("ownstory.test").warning("inside")
        return "ok"

    response = app.test_client().get("/_log_something")
    [inside] = [line for line in json_lines() if line["message"] == "inside"]
    assert inside["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("text, secret", [
    ("GET /optout/5b1c?k=Zm9vYmFy HTTP/1.1", "Zm9vYmFy"),
    ("redirect to http://localhost/networks/demo/callback?code=abc123&state=xyz", "abc123"),
    ("Authorization: Bearer ows_Qm9vbXNoYWthbGFrYQ", "ows_Qm9vbXNoYWthbGFrYQ"),
    ("token ows_Qm9vbXNoYWthbGFrYQ leaked", "Qm9vbXNoYWthbGFrYQ"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("mail to liz.smith+x@example.org failed", "liz.smith+x@example.org"),
    ("form k=Zm9vYmFy&scope=all", "Zm9vYmFy"),
    ('{"access_token": "at-123", "refresh_token": "rt-456"}', "at-123"),
    ('{"access_token": "at-123", "refresh_token": "rt-456"}', "rt-456"),
    ("client_secret=s3cr3t password=hunter22", "s3cr3t"),
    ("client_secret=s3cr3t password=hunter22", "hunter22"),
    ("owner salt=c2FsdHk", "c2FsdHk"),
])
def test_redaction_masks_what_looks_secret(text, secret):
    assert secret not in app_logging.redact(text)


def test_redaction_keeps_ids_and_plain_words():
    text = "opt-out 5b1c0a2e-1f00-4d7e-a2b5-0c1e5a3f2d10 completed: 3 steps, status needs_attention. Why?"
    assert app_logging.redact(text) == text


def test_the_handler_redacts_arguments_and_tracebacks(json_lines):
    log = logging.getLogger("ownstory.test")
    log.info("visited %s", "/optout/abc?k=Zm9vYmFy")
    try:
        raise ValueError("bad token ows_Qm9vbXNoYWthbGFrYQ for liz@example.org")
    except ValueError:
        log.exception("failed")
    text = json.dumps(json_lines())
    for secret in ("Zm9vYmFy", "Qm9vbXNoYWthbGFrYQ", "liz@example.org"):
        assert secret not in text
    assert "/optout/abc" in text


def test_the_factory_configures_json_logs_when_asked(make_app):
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        make_app({"JSON_LOGS": True})
        make_app({"JSON_LOGS": True})  # a second app replaces the handler, never doubles it
        ours = [h for h in root.handlers if isinstance(h.formatter, app_logging.JsonFormatter)]
        assert len(ours) == 1
    finally:
        for h in [h for h in root.handlers if h not in before[0]]:
            root.removeHandler(h)
        root.setLevel(before[1])


def test_logging_someone_else_configured_is_left_alone(make_app):
    """Outside tests the factory sets up JSON logs, unless the program (the bench, say) set up its own."""
    root = logging.getLogger()
    other = logging.StreamHandler(io.StringIO())
    root.addHandler(other)
    try:
        make_app({"TESTING": False})
        assert not [h for h in root.handlers if isinstance(h.formatter, app_logging.JsonFormatter)]
    finally:
        root.removeHandler(other)


# --- a whole run -------------------------------------------------------------------------------------

# Ownstory's own code, whose lines must be clean before any redaction. Libraries' debug output (Authlib's
# authorization server, inside Demo Social, prints the tokens it issues) is cleaned by the redaction filter.
OWN_PACKAGES = {"app", "consent", "erasure", "demo", "ownstory"}


class KeepEverything(logging.Handler):
    """Every record as the code wrote it, before any redaction."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@pytest.fixture
def every_logger_at_debug(json_lines):
    """Every logger at DEBUG, into a raw handler and the JSON one, but SQLAlchemy's.

    SQLAlchemy's loggers are its SQL echo, off unless asked for (the library sets them to WARNING):
    echoing SQL prints bound parameters and rows, which is what it is for.
    """
    raw = KeepEverything()
    root = logging.getLogger()
    root.handlers.insert(0, raw)
    loggers = [lg for name, lg in logging.root.manager.loggerDict.items()
               if isinstance(lg, logging.Logger) and name.split(".")[0] != "sqlalchemy"]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.NOTSET)
        lg.disabled = False
    yield raw, json_lines
    for lg, level, disabled in saved:
        lg.setLevel(level)
        lg.disabled = disabled
    root.removeHandler(raw)


def test_a_whole_run_logs_no_secret(app, client, csrf_post, api_token, every_logger_at_debug, sessions, vault):
    """Sign up, connect Demo Social over OAuth, consent, check consent, opt out, drain the worker and read
    the status page: then grep every line of every logger for every secret involved."""
    from consent.models import Grant
    from tests.consent.helpers_connect import connect_through_demo
    from tests.erasure.helpers_optout import submit_optout

    raw, json_lines = every_logger_at_debug
    email = "whole.run.person@example.org"
    assert csrf_post(client, "/signup", {"email": email, "password": PASSWORD}).status_code == 302
    assert connect_through_demo(client, csrf_post, "1005").status_code in (302, 303)
    with sessions() as db:
        grant = db.scalar(select(Grant).where(Grant.account_id == "1005"))
        access, refresh = vault.open(grant.access_token), vault.open(grant.refresh_token)
    assert csrf_post(client, "/consents", {"consent:demo:scoring": "on"}).status_code in (302, 303)
    service_token = api_token("service")
    checked = client.post("/api/v1/consent/check", headers={"Authorization": f"Bearer {service_token}"},
                          json={"checks": [{"network": "demo", "account": "1005", "purpose": "scoring"}]})
    assert checked.json["results"][0]["allowed"] is True

    status_path = submit_optout(client, csrf_post, "all")
    k = parse_qs(urlsplit(status_path).query)["k"][0]
    worker = Worker(app, threads=2)
    try:
        worker.drain()
    finally:
        worker.close()
    page = client.get(status_path)
    assert page.status_code == 200 and "Done." in page.get_data(as_text=True)
    client.get("/optout/" + urlsplit(status_path).path.rsplit("/", 1)[1] + "?k=not-the-secret")

    salt = owner.salt(owner.b64url_decode(k))
    secrets = {
        "email": email, "password": PASSWORD, "access token": access, "refresh token": refresh, "k": k,
        "salt": owner.b64url(salt), "salt (hex)": salt.hex(), "client secret": DEMO_CLIENT_SECRET,
        "API token": service_token, "session secret": app.config["SECRET_KEY"], "token key": TOKEN_KEY,
        "pepper": "test-pepper-not-for-production",
    }
    written = [json.dumps(line) for line in json_lines()]  # what reaches the log: every logger, redacted
    ours = [line for line in raw.lines if line.split(".")[0].split(":")[0] in OWN_PACKAGES]  # as our code wrote it
    assert len(written) > 30 and len(ours) > 15
    assert any(line.startswith("ownstory.access: POST /optout 302") for line in ours)
    leaks = [(what, line) for line in written + ours for what, secret in secrets.items() if secret in line]
    assert leaks == []
