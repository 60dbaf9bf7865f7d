"""Demo Social served at /demo under `make run` (app/demo.py)."""
from __future__ import annotations

import logging

from app.settings import ROOT
from tests.conftest import networks_toml


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
