"""The `http` store kind: data that only the platform's own services may delete, reached through their API.

    [[stores]]
    name = "billing"
    kind = "http"
    endpoint_env = "BILLING_ERASE_URL"   # the service's base URL, from the environment
    categories = ["invoices"]
    identities = ["email"]               # the kinds of identity it is sent, never more
    max_in_flight = 4                    # optional: at most 4 of its erasures at once, from all the workers

Ownstory asks; the service deletes and says how many (http_service.py holds the calls). Each category is
an entry of its own, so steps, counts and receipt lines are per category, as for tables.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.settings import ConfigError
from consent.suppression import Identity
from erasure.engine.revocation import TIMEOUT
from erasure.stores.datamap import Identities, _string
from erasure.stores.http_service import POLL_FOR, ServiceClient
from erasure.stores.http_signing import RequestSigner
from erasure.stores.kinds import IDENTITY_KINDS, Entry, OnBatch, OnStarted, StoreKind

FIELDS = ("name", "kind", "endpoint_env", "categories", "identities")  # and max_in_flight, any store's (datamap.py)
SERVICE = "service"  # an entry's `identity`: the service is sent each identity of the kinds it may see


@dataclass(frozen=True)
class ServiceEntry(Entry):
    """One category a service holds. `identity` is always "service" and `network` None: what the service
    is sent is `identities`, the kinds of identity the data map allows it (accounts and handles of every
    network the person connected)."""

    identities: tuple[str, ...] = ()

    def values_in(self, identities: Identities) -> list[str]:
        """The person's identity strings of the allowed kinds, sorted: "email:<email>",
        "account:<network>:<id>", "handle:<network>:<handle>", "subject:<id>"."""
        found: list[Identity] = []
        if identities.subject:
            found.append(Identity("subject", identities.subject))
        if identities.email:
            found.append(Identity("email", identities.email))
        found += [Identity("account", value, network) for network, value in identities.accounts]
        found += [Identity("handle", value, network) for network, value in identities.handles]
        return sorted({i.canonical() for i in found if i.kind in self.identities})


class HttpStore(StoreKind):
    """A service of the platform's own, behind the erasure protocol the README documents."""

    kind = "http"

    def __init__(self, name: str, entries: tuple[ServiceEntry, ...], endpoint: str, *, timeout=TIMEOUT,
                 poll_for: float = POLL_FOR) -> None:
        super().__init__(name, entries)
        self.service = ServiceClient(name, endpoint, timeout=timeout, poll_for=poll_for)

    def use_signer(self, signer: RequestSigner) -> None:
        """The app gives its signer once its keys are at hand; until then every call is refused here."""
        self.service.signer = signer

    @classmethod
    def load(cls, where: str, label: str, raw: Mapping[str, Any], networks: Mapping | None,
             environ: Mapping[str, str]) -> HttpStore:
        for key in raw:
            if key not in FIELDS:
                hint = " (the endpoint comes from the environment: name its variable in endpoint_env)" \
                    if key in ("endpoint", "url", "url_env") \
                    else f" (an http store has {', '.join(FIELDS)}, max_in_flight)"
                raise ConfigError(where, f"{label}.{key}", "unknown field" + hint)
        name = _string(where, f"{label}.name", raw.get("name"))
        var = _string(where, f"{label}.endpoint_env", raw.get("endpoint_env"))
        endpoint = environ.get(var, "").strip()
        if not endpoint:
            raise ConfigError(where, f"{label}.endpoint_env", f"the environment variable {var} is not set")
        _check_endpoint(where, f"{label}.endpoint_env", var, endpoint,
                        production=environ.get("OWNSTORY_ENV", "development") == "production")
        categories = _list(where, f"{label}.categories", raw.get("categories"), "category")
        kinds = _list(where, f"{label}.identities", raw.get("identities"), "identity kind")
        for kind in kinds:
            if kind not in IDENTITY_KINDS:
                raise ConfigError(where, f"{label}.identities", f"{kind!r} is not one of {', '.join(IDENTITY_KINDS)}")
        entries = tuple(ServiceEntry(name, category, SERVICE, None, kinds) for category in categories)
        return cls(name, entries, endpoint)

    def count(self, entry: Entry, values: list[str]) -> int:
        if not values:
            return 0
        return self.service.count([entry.category], values)[entry.category]

    def count_many(self, wanted: list[tuple[Entry, list[str]]]) -> list[int]:
        """One call for every category sent the same identities (all of them, for one person)."""
        groups: dict[tuple[str, ...], dict[str, None]] = {}  # identities: their categories, each once, in order
        for entry, values in wanted:
            if values:
                groups.setdefault(tuple(values), {})[entry.category] = None
        counts = {values: self.service.count(list(categories), list(values)) for values, categories in groups.items()}
        return [counts[tuple(values)][entry.category] if values else 0 for entry, values in wanted]

    def purge(self, entry: Entry, values: list[str], on_batch: OnBatch | None = None, batch_size: int = 1000) -> int:
        """The service deletes in its own batches; what counts is what it confirms. While it works (202),
        on_batch(0) keeps the step's lease."""
        return self._erase(entry, values, on_batch, request_id=None)

    def purge_resuming(self, entry: Entry, values: list[str], job: dict | None, on_started: OnStarted,
                       on_batch: OnBatch | None = None) -> int:
        """A purge a step may retry while the service still works on it (its 202 outlived an attempt's polls,
        or the answer was lost): the request_id is kept with the step before the service hears of it, and a
        retry sends the same one, which the protocol makes the same erasure, never a second job."""
        request_id = job.get("request_id") if job else None
        if values and not (isinstance(request_id, str) and request_id):
            request_id = str(uuid.uuid4())
            on_started({"request_id": request_id})
        return self._erase(entry, values, on_batch, request_id)

    def _erase(self, entry: Entry, values: list[str], on_batch: OnBatch | None, request_id: str | None) -> int:
        if not values:
            return 0
        deleted = self.service.erase([entry.category], values, on_wait=lambda: on_batch(0) if on_batch else None,
                                     request_id=request_id)
        n = deleted[entry.category]
        if on_batch:
            on_batch(n)
        return n

    def export(self, entry: Entry, values: list[str], batch_size: int = 1000) -> Iterator[list[dict]]:
        cursor: str | None = None
        while values:
            page, cursor = self.service.export_page(entry.category, values, cursor, batch_size)
            for start in range(0, len(page), batch_size):
                yield page[start:start + batch_size]
            if cursor is None:
                return

    def describe(self, entry: Entry) -> dict[str, Any]:
        return {"service": self.name, "identities": list(entry.identities) if isinstance(entry, ServiceEntry) else []}

    def dispose(self, close: bool = True) -> None:
        self.service.close(close)


def _check_endpoint(where: str, label: str, var: str, endpoint: str, production: bool) -> None:
    """The URL itself is never repeated: the message names the variable that holds it."""
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        raise ConfigError(where, label, f"{var} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(where, label, f"{var} must be an https:// URL (http:// only outside production)")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(where, label, f"{var} must not carry a user or password: Ownstory signs its calls")
    if parts.query or parts.fragment:
        raise ConfigError(where, label, f"{var} must not have a query or fragment: it is the service's base URL")
    if production and parts.scheme != "https":
        raise ConfigError(where, label, f"{var} must be an https:// URL when OWNSTORY_ENV=production")


def _list(where: str, label: str, value, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(where, label, f"is required: a non-empty list, each item a {what}")
    items = tuple(_string(where, label, item) for item in value)
    if len(set(items)) != len(items):
        raise ConfigError(where, label, f"lists the same {what} twice")
    return items
