"""`make run`'s start: the migrations say nothing unless they fail, and the server says one plain line, the
address to open."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import requests

from app.settings import ROOT
from tests.helpers_browser import free_port


def environment(tmp_path, port: int) -> dict[str, str]:
    return {**os.environ, "OWNSTORY_DATABASE_URL": f"sqlite:///{tmp_path / 'ownstory.db'}",
            "OWNSTORY_BASE_URL": f"http://127.0.0.1:{port}", "OWNSTORY_SECRET_KEY": "s" * 40,
            "OWNSTORY_TOKEN_KEYS": "vZ7nM1nq0kq3Z6yYq3xk6m7Jm2Yg3Yl9m0l8o1rGm5E=", "OWNSTORY_PEPPER": "p" * 40,
            "BILLING_ERASE_URL": f"http://127.0.0.1:{port}/demo/billing"}


def test_make_run_says_one_plain_line_with_the_address(tmp_path):
    port = free_port()
    env = environment(tmp_path, port)
    upgrade = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "setup plugin" not in upgrade.stderr  # Alembic's plugin chatter, once 14 lines of JSON

    server = subprocess.Popen([sys.executable, "-m", "wsgi", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        assert first == (f"Ownstory is running: open http://127.0.0.1:{port} in your browser "
                         "(Ctrl-C stops it).\n")
        for _ in range(50):
            try:
                assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
                break
            except requests.ConnectionError:
                time.sleep(0.1)
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert out == ""  # nothing more on the terminal's main stream
    assert "Serving Flask app" not in err and "development server" not in err
