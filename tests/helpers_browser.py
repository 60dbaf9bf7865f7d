"""Playwright driving Debian's chromium, for tests that use the pages as a person does, and the app served
as `make run` serves it, for it to drive."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from app.settings import ROOT
from tests.helpers_servers import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
# Without these, chromium keeps trying to reach Google's hosts from a machine with no network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail("Debian's chromium is not installed; .ci/run should have installed it")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); CI installs it and runs this")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="session")
def browser():
    """One chromium for the whole run, started by the first test that needs it: starting Playwright's driver
    and the browser takes longer than most of the tests. Each test still gets a context of its own (its own
    cookies, storage and cache), as a fresh browser profile would be."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


@pytest.fixture
def live_app(make_app, tmp_path):
    """The app as `make run` serves it, on a loopback port, with Demo Social mounted at /demo and the shipped
    catalogue, but no inline worker (a test runs one): (app, base URL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app({"DEMO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo_social.db'}",
                    "DEMO_BILLING_DATABASE": str(tmp_path / "demo_billing.db")},
                   demo="1", base_url=base, networks=str(ROOT / "config" / "networks.toml"))
    server = LiveServer(app, port=port).start()
    yield app, base
    server.stop()
