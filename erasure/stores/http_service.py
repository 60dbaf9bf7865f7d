"""The wire side of an `http` store: Ownstory's signed calls to one of the platform's services, and their answers.

The protocol is the README's "Erasing in the platform's own services". Trouble is said the way the rest
of the erasure engine says it, with the retry rules of revocation: a timeout, a refused connection, a 5xx,
408, 425 or 429 is `StoreUnavailable` (the step retries with backoff, never sooner than the service's
Retry-After); any other 4xx, a redirect or an answer that is not the protocol's is `StoreMisconfigured`
(the step retries too, and shows as needing attention). Messages name the service by its store, never
its host, and never carry an identity.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from erasure.engine.revocation import RETRYABLE_STATUSES, TIMEOUT, parse_retry_after
from erasure.stores.http_signing import RequestSigner
from erasure.stores.kinds import StoreMisconfigured, StoreUnavailable

POLL_FOR = 30.0  # seconds one purge waits on a service that answered 202; then the step retries later
POLL_FIRST, POLL_MOST = 0.25, 5.0  # seconds between polls: doubling from the first, up to the most


class ServiceClient:
    """One service's erasure API. Thread-safe: each worker thread gets its own HTTP session."""

    def __init__(self, store: str, endpoint: str, *, timeout=TIMEOUT, poll_for: float = POLL_FOR,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.endpoint = endpoint
        self.signer: RequestSigner | None = None  # given by the app once its keys are at hand
        self.timeout = timeout
        self.poll_for = poll_for
        self.sleep, self.clock = sleep, clock
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    # --- the three calls ------------------------------------------------------------------------

    def erase(self, categories: Sequence[str], identities: Sequence[str],
              on_wait: Callable[[], None], request_id: str | None = None) -> dict[str, int]:
        """Ask the service to delete; returns what it confirmed deleted, per category.

        Without a request_id, the call is a request of its own (a new one): what it finds left to delete.
        With one kept from an earlier attempt, it is that erasure again: the service answers the job it
        started then (its status URL while it runs, its counts once done) and starts no second one.
        """
        body = {"request_id": request_id or str(uuid.uuid4()), "categories": list(categories),
                "identities": list(identities)}
        response = self._send("POST", self.endpoint, body)
        if response.status_code == 202:
            response = self._poll(self._status_url(response), on_wait)
        return self._answer(response, "deleted", categories)

    def count(self, categories: Sequence[str], identities: Sequence[str]) -> dict[str, int]:
        response = self._send("POST", self._at("count"), {"categories": list(categories),
                                                          "identities": list(identities)})
        return self._answer(response, "counts", categories)

    def export_page(self, category: str, identities: Sequence[str], cursor: str | None,
                    limit: int) -> tuple[list[dict], str | None]:
        """One page of the category's items, and the cursor of the next page (None: that was the last)."""
        response = self._send("POST", self._at("export"), {"categories": [category], "identities": list(identities),
                                                           "cursor": cursor, "limit": limit})
        body = self._json(response, category)
        items = body.get("items") if isinstance(body, dict) else None
        page = items.get(category) if isinstance(items, dict) else None
        following = body.get("next")
        if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
            raise StoreMisconfigured(self.store, category, "the service's export answer has no list of items "
                                                           "(JSON objects) for this category")
        if following is not None and (not isinstance(following, str) or not following or following == cursor):
            raise StoreMisconfigured(self.store, category, "the service's export answer has a bad 'next' cursor")
        return page, following

    def close(self, close: bool = True) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        if close:
            for session in sessions:
                session.close()
        self._local = threading.local()

    # --- sending --------------------------------------------------------------------------------

    def _at(self, name: str) -> str:
        return f"{self.endpoint.rstrip('/')}/{name}"

    def _http(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    def _send(self, method: str, url: str, body: dict | None = None) -> requests.Response:
        if self.signer is None:
            raise StoreMisconfigured(self.store, "(signing)", "no signing key was given to this store, so its "
                                                              "service would refuse every call")
        request = requests.Request(method, url, json=body, headers={"Accept": "application/json"}).prepare()
        self.signer.sign(request)
        try:
            response = self._http().send(request, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout:
            raise StoreUnavailable(self.store, "the service did not answer in time") from None
        except requests.ConnectionError:
            raise StoreUnavailable(self.store, "could not connect to the service") from None
        except requests.RequestException:
            raise StoreUnavailable(self.store, "the call to the service failed") from None
        if response.status_code in (200, 202):
            return response
        raise self._refusal(response)

    def _refusal(self, response: requests.Response) -> Exception:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status >= 500 or status in RETRYABLE_STATUSES:
            return StoreUnavailable(self.store, f"the service answered HTTP {status}", retry_after)
        if 300 <= status < 400:
            return StoreMisconfigured(self.store, "(endpoint)", f"the service answered HTTP {status}: a redirect is "
                                                                "not an answer (is the endpoint the URL it serves?)")
        why = " (it refused Ownstory's signature)" if status in (401, 403) else ""
        return StoreMisconfigured(self.store, "(endpoint)", f"the service answered HTTP {status}{why}")

    # --- 202: waiting for the service -----------------------------------------------------------

    def _status_url(self, response: requests.Response) -> str:
        body = self._json(response, "(status_url)")
        link = body.get("status_url") if isinstance(body, dict) else None
        if not isinstance(link, str) or not link:
            raise StoreMisconfigured(self.store, "(status_url)", "the service answered 202 without a status_url")
        url = urljoin(self.endpoint, link)
        if urlsplit(url)[:2] != urlsplit(self.endpoint)[:2]:
            # Signed calls go to the configured service only, whatever its answers say.
            raise StoreMisconfigured(self.store, "(status_url)", "the service's status_url is on another origin")
        return url

    def _poll(self, url: str, on_wait: Callable[[], None]) -> requests.Response:
        """GET the status URL until the service confirms, for at most poll_for seconds."""
        deadline = self.clock() + self.poll_for
        delay, asked = POLL_FIRST, None
        while True:
            on_wait()
            left = deadline - self.clock()
            if left <= 0:
                raise StoreUnavailable(self.store, "the service has not confirmed the deletion yet", asked)
            self.sleep(min(max(asked, POLL_FIRST) if asked is not None else delay, left))
            response = self._send("GET", url)
            if response.status_code == 200:
                return response
            asked = parse_retry_after(response.headers.get("Retry-After"))
            delay = min(delay * 2, POLL_MOST)

    # --- answers --------------------------------------------------------------------------------

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise StoreMisconfigured(self.store, what, f"the service answered {response.status_code} "
                                                       "with something that is not JSON") from None

    def _answer(self, response: requests.Response, member: str, categories: Sequence[str]) -> dict[str, int]:
        body = self._json(response, member)
        counts = body.get(member) if isinstance(body, dict) else None
        found: dict[str, int] = {}
        for category in categories:
            n = counts.get(category) if isinstance(counts, dict) else None
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise StoreMisconfigured(self.store, category, f"the service's answer has no '{member}' count "
                                                               "for this category")
            found[category] = n
        return found
