"""Under `make run` the app serves Demo Social at /demo (app/demo.py) and Demo Billing at /demo/billing, which
takes only calls signed by the app."""
from __future__ import annotations

import logging

import requests

from app.settings import ROOT
from erasure.receipts import keys
from erasure.stores.datamap import Identities
from erasure.stores.http_signing import RequestSigner
from tests.conftest import networks_toml
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


def test_a_catalogue_without_demo_social_turns_the_demo_off_with_a_notice(make_app, tmp_path, demo_network,
                                                                          config_files, caplog):
    networks = tmp_path / "own.toml"
    networks.write_text(networks_toml(demo_network.url).replace("networks.demo", "networks.acme"))
    datamap = tmp_path / "own-datamap.toml"
    datamap.write_text(config_files["datamap"].read_text().replace('network = "demo"', 'network = "acme"'))

    with caplog.at_level(logging.WARNING):
        app = make_app({"DEMO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo_social.db'}"},
                       demo="1", networks=networks, datamap=datamap)

    assert list(app.extensions["networks"]) == ["acme"]
    assert "demo_app" not in app.extensions and app.config["DEMO"] is False
    [notice] = [r.getMessage() for r in caplog.records if "Demo Social is off" in r.getMessage()]
    assert str(networks) in notice and "\n" not in notice
    assert app.test_client().get("/demo/.well-known/openid-configuration").status_code == 404


def test_the_shipped_demo_names_its_issuer(make_app, tmp_path):
    app = make_app({"DEMO_DATABASE_URL": f"sqlite:///{tmp_path / 'demo_social.db'}"},
                   demo="1", networks=ROOT / "config" / "networks.toml")
    demo = app.extensions["networks"]["demo"]
    assert demo.issuer == "http://localhost/demo"

    document = app.test_client().get("/demo/.well-known/openid-configuration").get_json()

    assert document["issuer"] == demo.issuer
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["authorization_endpoint"] == demo.authorize_url
