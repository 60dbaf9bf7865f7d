"""The http store kind against Demo Billing, the reference service, live on loopback: count, purge, export,
the faults the retry rules are for, and the data-map checks at start-up."""
from __future__ import annotations

import json
import time

import pytest

from app.settings import ConfigError
from erasure.stores.datamap import Identities
from erasure.stores.http_kind import HttpStore, ServiceEntry
from erasure.stores.kinds import StoreMisconfigured, StoreUnavailable
from tests.erasure.stores.helpers_billing import BILLING_VAR, billing_store
from tests.helpers_browser import free_port

LIZ = "email:liz@example.org"
PERSON = Identities(subject="u-1", email="Liz@Example.org", accounts=(("demo", "1001"),), handles=(("demo", "liz"),))


@pytest.fixture
def store(billing, billing_server, published_keys):
    made = billing_store(billing_server.url, published_keys)
    yield made
    made.dispose()


def purge_step(store: HttpStore, entry, values, first: int | None = None) -> tuple[int, int]:
    """What a purge step records, as the engine counts it: (items at the first attempt, items on the receipt)."""
    remaining = store.count(entry, values)
    first = remaining if first is None else first
    purged = store.purge(entry, values)
    return first, first + max(0, purged - remaining)


def test_the_service_deletes_and_says_how_many_and_then_counts_none(store, billing):
    billing.add_invoices(LIZ, 3)
    billing.add_invoices("email:omar@example.org", 2)
    (entry,) = store.entries
    values = entry.values_in(PERSON)

    assert store.count(entry, values) == 3
    batches: list[int] = []
    assert store.purge(entry, values, on_batch=batches.append) == 3
    assert batches == [3]
    assert store.count(entry, values) == 0  # what verify asks
    assert billing.held("email:omar@example.org") == 2  # nobody else's
    assert store.purge(entry, values) == 0  # a second run finds nothing


def test_the_service_is_sent_only_the_identities_the_data_map_allows(billing, billing_server, published_keys):
    only_email = billing_store(billing_server.url, published_keys, identities=["email"])
    (entry,) = only_email.entries
    assert entry.values_in(PERSON) == [LIZ]
    only_email.purge(entry, entry.values_in(PERSON))
    with billing.db() as conn:
        (sent,) = conn.execute("SELECT customers FROM erasures").fetchone()
    assert json.loads(sent) == [LIZ]

    several = billing_store(billing_server.url, published_keys, identities=["account", "email", "handle", "subject"])
    assert several.entries[0].values_in(PERSON) == [
        "account:demo:1001", LIZ, "handle:demo:liz", "subject:u-1"]
    assert several.entries[0].values_in(Identities(accounts=(("demo", "1001"),))) == ["account:demo:1001"]
    assert ServiceEntry("billing", "invoices", "service", None, ("email",)).values_in(Identities()) == []


def test_one_entry_per_category_and_one_call_to_count_them_all(billing, billing_server, published_keys):
    store = billing_store(billing_server.url, published_keys, categories=["invoices", "payments"])
    assert [(e.store, e.category, e.key) for e in store.entries] == [
        ("billing", "invoices", "invoices"), ("billing", "payments", "payments")]
    billing.add_invoices(LIZ, 2)
    invoices = store.entries[0]
    billing.calls.reset()
    assert store.count_many([(invoices, [LIZ]), (invoices, []), (invoices, [LIZ])]) == [2, 0, 2]
    assert billing.calls["count"] == 1


def test_export_reads_every_page(store, billing):
    billing.add_invoices(LIZ, 250)
    (entry,) = store.entries
    pages = list(store.export(entry, [LIZ], batch_size=100))
    assert [len(p) for p in pages] == [100, 100, 50]
    numbers = [item["number"] for page in pages for item in page]
    assert len(set(numbers)) == 250
    assert billing.calls["export"] == 3
    assert store.describe(entry) == {"service": "billing", "identities": ["email"]}
    assert list(store.export(entry, [], batch_size=100)) == []


def test_a_500_then_a_200_deletes_once_and_counts_add_up(store, billing):
    billing.add_invoices(LIZ, 4)
    (entry,) = store.entries
    billing.faults.set("erase", status=500, times=1)
    with pytest.raises(StoreUnavailable) as failed:
        purge_step(store, entry, [LIZ])
    assert "HTTP 500" in str(failed.value)
    first, rows = purge_step(store, entry, [LIZ], first=4)  # the step's retry, with what it recorded
    assert (first, rows) == (4, 4)
    assert billing.held(LIZ) == 0


def test_an_answer_lost_after_the_service_deleted_is_not_counted_twice(billing, billing_server, published_keys):
    store = billing_store(billing_server.url, published_keys, timeout=(2, 1.0))
    billing.add_invoices(LIZ, 3)
    (entry,) = store.entries
    # A first call has the service fetch Ownstory's keys, which on a busy machine took longer than the step
    # waited: then the count was the answer lost, and the erase never sent. Only the erase is late below.
    assert store.count(entry, [LIZ]) == 3
    billing.faults.set("erase", delay=2.5, times=1)  # it deletes, and answers after Ownstory stopped waiting
    with pytest.raises(StoreUnavailable, match="did not answer in time"):
        purge_step(store, entry, [LIZ])
    assert billing.calls["erase"] == 1
    _wait_for(lambda: billing.held(LIZ) == 0)
    assert purge_step(store, entry, [LIZ], first=3) == (3, 3)


def test_retry_after_is_passed_on_to_the_step(store, billing):
    billing.add_invoices(LIZ, 1)
    billing.faults.set("erase", status=503, retry_after=7, times=1)
    with pytest.raises(StoreUnavailable) as failed:
        store.purge(store.entries[0], [LIZ])
    assert failed.value.retry_after == 7
    billing.faults.set("count", status=429, retry_after=3, times=1)
    with pytest.raises(StoreUnavailable) as failed:
        store.count(store.entries[0], [LIZ])
    assert failed.value.retry_after == 3


def test_202_then_done_waits_for_the_confirmation(store, billing):
    billing.add_invoices(LIZ, 2)
    billing.polls_before_done = 3
    (entry,) = store.entries
    batches: list[int] = []
    assert store.purge(entry, [LIZ], on_batch=batches.append) == 2
    assert billing.calls["status"] == 3
    assert batches[-1] == 2 and set(batches[:-1]) == {0}  # the lease kept while it waited
    assert store.count(entry, [LIZ]) == 0


def test_a_202_not_confirmed_in_time_is_followed_by_the_next_attempts_never_started_again(billing, billing_server,
                                                                                         published_keys):
    store = billing_store(billing_server.url, published_keys, poll_for=0.2)  # one poll an attempt
    billing.add_invoices(LIZ, 2)
    billing.polls_before_done = 4
    (entry,) = store.entries
    kept: list[dict] = []  # what the step keeps of the job: its request_id, before the service hears of it
    with pytest.raises(StoreUnavailable, match="has not confirmed"):
        store.purge_resuming(entry, [LIZ], None, kept.append)
    assert billing.held(LIZ) == 2  # the service deletes when it is done, not before
    attempts = 1
    while True:
        attempts += 1
        try:
            deleted = store.purge_resuming(entry, [LIZ], kept[0], kept.append)
            break
        except StoreUnavailable:
            assert attempts < 10
    assert deleted == 2 and attempts == 4 and len(kept) == 1
    with billing.db() as conn:
        assert conn.execute("SELECT count(*) FROM erasures").fetchone()[0] == 1  # one job, followed to its end
    assert store.purge_resuming(entry, [LIZ], kept[0], kept.append) == 2  # its answer again, once done


def test_a_service_that_never_confirms_is_never_done(billing, billing_server, published_keys):
    store = billing_store(billing_server.url, published_keys, poll_for=0.3)
    billing.add_invoices(LIZ, 2)
    billing.polls_before_done = None
    (entry,) = store.entries
    for _attempt in range(3):
        with pytest.raises(StoreUnavailable, match="has not confirmed"):
            store.purge(entry, [LIZ])
    assert store.count(entry, [LIZ]) == 2


def test_a_refusal_is_a_misconfiguration_and_says_nothing_of_the_person(billing, billing_server, published_keys):
    store = billing_store(billing_server.url, published_keys, categories=["payments"])  # not a category it holds
    with pytest.raises(StoreMisconfigured) as refused:
        store.purge(store.entries[0], [LIZ])
    assert "HTTP 400" in str(refused.value)
    for secret in ("liz", "127.0.0.1", str(billing_server.port)):
        assert secret not in str(refused.value)


def test_an_unreachable_service_is_unavailable(billing, published_keys):
    store = billing_store(f"http://127.0.0.1:{free_port()}", published_keys)
    with pytest.raises(StoreUnavailable, match="could not connect") as failed:
        store.purge(store.entries[0], [LIZ])
    assert "127.0.0.1" not in str(failed.value)


def test_a_store_without_a_signer_refuses_to_call(billing, billing_server):
    store = HttpStore.load("datamap.toml", "stores.billing", {"name": "billing", "kind": "http",
                           "endpoint_env": BILLING_VAR, "categories": ["invoices"], "identities": ["email"]},
                           None, {BILLING_VAR: billing_server.url})
    with pytest.raises(StoreMisconfigured, match="no signing key"):
        store.count(store.entries[0], [LIZ])
    assert billing.calls["count"] == 0


# --- the data map ------------------------------------------------------------------------------

GOOD = {"name": "billing", "kind": "http", "endpoint_env": BILLING_VAR, "categories": ["invoices"],
        "identities": ["email"]}


def load(raw: dict, environ: dict | None = None) -> HttpStore:
    env = {BILLING_VAR: "https://billing.internal/erase"} if environ is None else environ
    return HttpStore.load("config/datamap.toml", "stores.billing", raw, None, env)


def test_a_good_entry_loads():
    store = load(GOOD)
    assert store.kind == "http" and store.name == "billing"
    assert [(e.category, e.identity, e.network, e.identities) for e in store.entries] == [
        ("invoices", "service", None, ("email",))]
    assert load(GOOD, {BILLING_VAR: "http://127.0.0.1:5000/demo/billing"}).service.endpoint.startswith("http://")


@pytest.mark.parametrize("raw, environ, field, words", [
    ({**GOOD, "endpoint": "https://x"}, None, "stores.billing.endpoint", "endpoint_env"),
    ({**GOOD, "timeout": 3}, None, "stores.billing.timeout", "unknown field"),
    (GOOD, {}, "stores.billing.endpoint_env", f"{BILLING_VAR} is not set"),
    ({**GOOD, "endpoint_env": ""}, None, "stores.billing.endpoint_env", "non-empty string"),
    (GOOD, {BILLING_VAR: "http://billing.internal/erase", "OWNSTORY_ENV": "production"},
     "stores.billing.endpoint_env", "must be an https:// URL when OWNSTORY_ENV=production"),
    (GOOD, {BILLING_VAR: "ftp://billing.internal/"}, "stores.billing.endpoint_env", "https://"),
    (GOOD, {BILLING_VAR: "https://svc:hunter2@billing.internal/"}, "stores.billing.endpoint_env", "user or password"),
    (GOOD, {BILLING_VAR: "https://billing.internal/erase?x=1"}, "stores.billing.endpoint_env", "query"),
    ({**GOOD, "categories": []}, None, "stores.billing.categories", "non-empty list"),
    ({**GOOD, "categories": "invoices"}, None, "stores.billing.categories", "non-empty list"),
    ({**GOOD, "categories": ["invoices", "invoices"]}, None, "stores.billing.categories", "twice"),
    ({k: v for k, v in GOOD.items() if k != "identities"}, None, "stores.billing.identities", "non-empty list"),
    ({**GOOD, "identities": ["phone"]}, None, "stores.billing.identities", "'phone' is not one of"),
])
def test_bad_configuration_is_refused_with_one_line_naming_file_store_and_field(raw, environ, field, words):
    with pytest.raises(ConfigError) as refused:
        load(raw, environ)
    assert refused.value.where == "config/datamap.toml"
    assert refused.value.field == field
    assert words in refused.value.problem
    assert "\n" not in str(refused.value)
    assert "hunter2" not in str(refused.value) and "billing.internal" not in str(refused.value)


def test_production_takes_https():
    store = load(GOOD, {BILLING_VAR: "https://billing.internal/erase", "OWNSTORY_ENV": "production"})
    assert store.service.endpoint == "https://billing.internal/erase"


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the service did not get there in time")
        time.sleep(0.05)
