"""A crowd on a live server: people as real HTTP clients (requests), each in a thread, doing one thing over and over
for a while, with every answer's status counted."""
from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from tests.conftest import PASSWORD

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TIMEOUT = 60  # seconds for one answer: a locked database waits up to 30 s before it fails


class Person:
    """One browser: its own cookies, forms sent with the CSRF token of the page they are on."""

    def __init__(self, base: str, email: str, password: str = PASSWORD) -> None:
        self.base, self.email, self.password = base, email, password
        self.http = requests.Session()

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base + path, allow_redirects=False, timeout=TIMEOUT)

    def post_form(self, path: str, data: dict, page: str | None = None) -> requests.Response:
        html = self.http.get(self.base + (page or path), timeout=TIMEOUT).text
        match = CSRF.search(html)
        token = match.group(1) if match else ""
        return self.http.post(self.base + path, data={**data, "csrf_token": token}, allow_redirects=False,
                              timeout=TIMEOUT)

    def sign_in(self) -> requests.Response:
        return self.post_form("/login", {"email": self.email, "password": self.password})

    def sign_out(self) -> requests.Response:
        return self.post_form("/logout", {}, page="/me")


@dataclass
class Tally:
    """Every status answered, by what was being done; and any answer that was a server error, kept to show."""

    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str, response: requests.Response) -> None:
        with self.lock:
            self.statuses[(what, response.status_code)] += 1
            if response.status_code >= 500:
                self.failures.append(f"{what}: {response.status_code} {response.text[:300]!r}")

    def server_errors(self) -> list[str]:
        return list(self.failures)

    def done(self, what: str, status: int) -> int:
        return self.statuses[(what, status)]


def crowd(jobs: list[Callable[[threading.Event], None]], seconds: float) -> None:
    """Run each job in a thread of its own until `seconds` have passed (a job checks the event), then wait for all."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(job: Callable[[threading.Event], None]) -> None:
        try:
            job(stop)
        except BaseException as exc:  # noqa: BLE001 (shown by the test, not lost in a thread)
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=TIMEOUT + 10)
    if errors:
        raise errors[0]


def signing_in(person: Person, tally: Tally) -> Callable[[threading.Event], None]:
    """Sign in, look at My data, sign out; again and again."""

    def job(stop: threading.Event) -> None:
        while not stop.is_set():
            tally.count("sign in", person.sign_in())
            tally.count("my data", person.get("/me"))
            tally.count("sign out", person.sign_out())

    return job


def saving_consents(person: Person, tally: Tally, boxes: list[str]) -> Callable[[threading.Event], None]:
    """Signed in, tick and untick the consent boxes on /consents; again and again."""

    def job(stop: threading.Event) -> None:
        tally.count("sign in", person.sign_in())
        on = False
        while not stop.is_set():
            on = not on
            tally.count("save consents", person.post_form("/consents", dict.fromkeys(boxes, "yes") if on else {}))

    return job


def connected(app, user, account_id: str, network: str = "demo") -> None:
    """Give a person a grant at a network, stored as the OAuth callback stores it, so they have consents to save."""
    from app.db import utcnow
    from consent.grants import store_grant
    from tests.conftest import db_session

    with db_session(app) as db:
        store_grant(db, app.extensions["ownstory_vault"], user.id, app.extensions["networks"][network],
                    {"access_token": "at-" + account_id},
                    {"sub": account_id, "preferred_username": "handle" + account_id}, utcnow())
        db.commit()


def consent_boxes(app, network: str = "demo") -> list[str]:
    return [f"consent:{network}:{key}" for key in app.extensions["purposes"]]


def connect_demo(person: Person, account: str) -> None:
    """Connect Demo Social (served by the app at /demo) through the real OAuth flow, as a browser would."""
    from tests.consent.helpers_connect import answer_at_network

    started = person.post_form("/networks/demo/connect", {}, page="/consents")
    assert started.status_code == 303, started.text[:300]
    back = answer_at_network(started.headers["Location"], "allow", account)
    landed = person.http.get(back, allow_redirects=False, timeout=TIMEOUT)
    assert landed.status_code in (302, 303), landed.text[:300]


def leaving(person: Person, tally: Tally, after: float, status_paths: list[str]) -> Callable[[threading.Event], None]:
    """Wait `after` seconds, opt out of everything, then watch the status page as the person would."""

    def job(stop: threading.Event) -> None:
        if stop.wait(after):
            return
        answer = person.post_form("/optout", {"scope": "all", "public_status": "yes"})
        tally.count("opt out", answer)
        if answer.status_code != 302:
            return
        status_paths.append(answer.headers["Location"])
        while not stop.wait(1.0):
            tally.count("status page", person.get(answer.headers["Location"]))

    return job
