"""Demo Social's outage switch: what an operator uses under `make run` to see a stuck opt-out."""
import re

import requests

from demo.server import create_demo_app
from tests.helpers_servers import serve


def test_the_switch_takes_the_network_down_and_brings_it_back():
    with serve(create_demo_app()) as server:
        browser = requests.Session()
        page = browser.get(f"{server.url}/outage", timeout=10)
        assert "Demo Social is up" in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        down = browser.post(f"{server.url}/outage", data={"csrf_token": token, "state": "down"}, timeout=10)
        assert "Demo Social is down" in down.text
        revoke = requests.post(f"{server.url}/oauth/revoke", data={"token": "x"}, timeout=10)
        assert revoke.status_code == 503 and revoke.headers["Retry-After"] == "5"
        assert browser.post(f"{server.url}/outage", data={"state": "up"}, timeout=10).status_code == 400  # no CSRF
        up = browser.post(f"{server.url}/outage", data={"csrf_token": token, "state": "up"}, timeout=10)
        assert "Demo Social is up" in up.text
        assert requests.post(f"{server.url}/oauth/revoke", data={"token": "x"}, timeout=10).status_code != 503
