"""Under `make run` the app serves Demo Billing at /demo/billing, which takes only calls signed by the app."""
from __future__ import annotations

import requests

from erasure.receipts import keys
from erasure.stores.datamap import Identities
from erasure.stores.http_signing import RequestSigner
from tests.erasure.stores.helpers_billing import billing_store


def test_demo_billing_is_served_and_checks_the_apps_own_signature(live_app, published_keys):
    app, base = live_app
    sessions, vault = app.extensions["ownstory_db"]["sessionmaker"], app.extensions["ownstory_vault"]
    store = billing_store(f"{base}/demo/billing", published_keys)
    store.use_signer(RequestSigner(lambda: keys.for_service_calls(sessions, vault)))
    (entry,) = store.entries
    values = entry.values_in(Identities(subject="u-1", email="newcomer@example.org"))

    assert store.count(entry, values) == 2  # invoices for any address, the first time it is asked about
    assert [item["number"] for page in store.export(entry, values) for item in page] == ["INV-1", "INV-2"]
    assert store.purge(entry, values) == 2
    assert store.count(entry, values) == 0

    unsigned = requests.post(f"{base}/demo/billing/count", json={"categories": ["invoices"], "identities": values},
                             timeout=5)
    assert unsigned.status_code == 401
