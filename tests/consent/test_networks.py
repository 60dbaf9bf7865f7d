"""The network catalogue: the shipped file loads, and every mistake names the file, network and field."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from app.settings import ROOT, ConfigError
from consent.networks import load_networks

SHIPPED = ROOT / "config" / "networks.toml"
BASE = "http://127.0.0.1:5000"
SECRET = "s3cret-value-never-shown"


def acme(**changes) -> dict:
    """A valid entry, changed: a value of None removes the field."""
    entry = {
        "name": "Acme Social",
        "authorize_url": "https://acme.example/oauth/authorize",
        "token_url": "https://acme.example/oauth/token",
        "userinfo_url": "https://acme.example/userinfo",
        "account_id_field": "sub",
        "handle_field": "preferred_username",
        "scopes": ["profile", "posts"],
        "client_id": "acme-client",
        "client_secret": SECRET,
        "token_endpoint_auth": "client_secret_basic",
        "revocation": {"style": "rfc7009", "url": "https://acme.example/oauth/revoke"},
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


def toml(entries: dict) -> str:
    """Just enough TOML for these tests (JSON strings and arrays are valid TOML values)."""
    lines = []
    for key, entry in entries.items():
        tables = {k: v for k, v in entry.items() if isinstance(v, dict)}
        lines.append(f'[networks."{key}"]')
        lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items() if k not in tables]
        for name, table in tables.items():
            lines.append(f'[networks."{key}".{name}]')
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def load(tmp_path, entries: dict | str, environ: dict | None = None, base_url: str = BASE):
    path = tmp_path / "networks.toml"
    path.write_text(entries if isinstance(entries, str) else toml(entries))
    return load_networks(path, base_url, environ=environ or {})


def fails(tmp_path, entries, environ=None) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, entries, environ)
    assert err.value.where == str(tmp_path / "networks.toml")
    assert str(tmp_path / "networks.toml") in str(err.value)
    assert SECRET not in str(err.value)
    return err.value


def test_the_shipped_catalogue_loads_with_demo_social():
    networks = load_networks(SHIPPED, "http://127.0.0.1:8123/", environ={})

    assert list(networks) == ["demo"]  # the real providers stay commented out until configured
    demo = networks["demo"]
    assert demo.name == "Demo Social"
    assert demo.authorize_url == "http://127.0.0.1:8123/demo/oauth/authorize"
    assert demo.token_url == "http://127.0.0.1:8123/demo/oauth/token"
    assert demo.userinfo_url == "http://127.0.0.1:8123/demo/userinfo"
    assert (demo.account_id_field, demo.handle_field) == ("sub", "preferred_username")
    assert demo.scopes == ("profile", "posts") and demo.scope == "profile posts"
    assert (demo.client_id, demo.token_endpoint_auth) == ("ownstory-demo", "client_secret_basic")
    assert demo.revocation.style == "rfc7009"
    assert demo.revocation.url == "http://127.0.0.1:8123/demo/oauth/revoke"


def test_every_commented_entry_is_valid_once_uncommented(tmp_path):
    """Uncommenting an entry and setting its two variables is all an operator has to do."""
    text = re.sub(r"(?m)^# (\[networks\.[^\]]+\]|[a-z_]+ = .*)$", r"\1", SHIPPED.read_text())
    variables = set(re.findall(r'_env = "([A-Z_]+)"', text))
    networks = load(tmp_path, text, environ={v: f"value-of-{v}" for v in variables})

    assert list(networks) == ["demo", "mastodon-social", "github", "google", "x", "reddit", "meta"]
    assert networks["github"].revocation.url == "https://api.github.com/applications/value-of-GITHUB_CLIENT_ID/grant"
    assert networks["meta"].revocation.url == "https://graph.facebook.com/v19.0/{account_id}/permissions"
    assert networks["x"].account_id_field == "data.id"
    # Without these, Google and Reddit issue no refresh token.
    assert dict(networks["google"].authorize_params) == {"access_type": "offline", "prompt": "consent"}
    assert dict(networks["reddit"].authorize_params) == {"duration": "permanent"}
    assert {n.revocation.style for n in networks.values()} == {"rfc7009", "github", "meta", "reddit"}
    for network in networks.values():
        assert all(u.startswith("https://") for u in (network.authorize_url, network.token_url,
                                                       network.userinfo_url)) or network.key == "demo"


def test_credentials_can_come_from_the_environment(tmp_path):
    entry = acme(client_id=None, client_secret=None, client_id_env="ACME_ID", client_secret_env="ACME_SECRET")
    networks = load(tmp_path, {"acme": entry}, environ={"ACME_ID": "id-from-env", "ACME_SECRET": SECRET})

    assert networks["acme"].client_id == "id-from-env"
    assert networks["acme"].client_secret == SECRET


def test_the_client_secret_never_shows(tmp_path):
    networks = load(tmp_path, {"acme": acme()})

    for shown in (repr(networks), str(networks), repr(networks["acme"]), str(networks["acme"])):
        assert SECRET not in shown
    assert "acme-client" in repr(networks["acme"])


def test_the_catalogue_cannot_be_changed(tmp_path):
    networks = load(tmp_path, {"acme": acme()})

    with pytest.raises(TypeError):
        networks["evil"] = networks["acme"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        networks["acme"].token_url = "https://evil.example/token"  # type: ignore[misc]


def test_base_url_placeholder_is_filled_in(tmp_path):
    entry = acme(authorize_url="{base_url}/demo/oauth/authorize")
    networks = load(tmp_path, {"acme": entry}, base_url="https://own.example.org/")
    assert networks["acme"].authorize_url == "https://own.example.org/demo/oauth/authorize"


def test_a_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_networks(tmp_path / "nowhere.toml", BASE)
    assert str(tmp_path / "nowhere.toml") in str(err.value) and "not found" in str(err.value)


def test_broken_toml_names_the_line(tmp_path):
    err = fails(tmp_path, '[networks.acme]\nname = "Acme\nscopes = ["profile"]\n')
    assert err.field == "(file)" and "line 2" in err.problem


def test_an_empty_catalogue_is_allowed(tmp_path):
    assert len(load(tmp_path, "# nothing configured yet\n")) == 0


SECRET_ENV = {"client_secret": None, "client_secret_env": "ACME_SECRET"}


@pytest.mark.parametrize("entries, field, words", [
    ({"acme": acme(colour="red")}, "networks.acme.colour", "unknown field"),
    ({"acme": acme(token_url=None)}, "networks.acme.token_url", "required"),
    ({"acme": acme(revocation=None)}, "networks.acme.revocation", "required"),
    ({"acme": acme(scopes="profile posts")}, "networks.acme.scopes", "list"),
    ({"acme": acme(scopes=["profile", 3])}, "networks.acme.scopes", "list"),
    ({"acme": acme(name=7)}, "networks.acme.name", "string"),
    ({"acme": acme(name="")}, "networks.acme.name", "string"),
    ({"acme": acme(client_secret=12345)}, "networks.acme.client_secret", "string"),
    ({"acme": acme(authorize_url="ftp://acme.example/auth")}, "networks.acme.authorize_url", "http(s) URL"),
    ({"acme": acme(userinfo_url="javascript:alert(1)")}, "networks.acme.userinfo_url", "http(s) URL"),
    ({"acme": acme(token_url="acme.example/token")}, "networks.acme.token_url", "http(s) URL"),
    ({"acme": acme(token_url="https://acme.example/{tenant}/token")}, "networks.acme.token_url", "placeholder"),
    ({"acme": acme(token_endpoint_auth="private_key_jwt")}, "networks.acme.token_endpoint_auth", "client_secret_basic"),
    ({"acme": acme(revocation={"style": "carrier-pigeon"})}, "networks.acme.revocation.style", "rfc7009"),
    ({"acme": acme(revocation={"url": "https://a.example/r"})}, "networks.acme.revocation.style", "required"),
    ({"acme": acme(revocation={"style": "rfc7009"})}, "networks.acme.revocation.url", "required for style rfc7009"),
    ({"acme": acme(revocation={"style": "github"})}, "networks.acme.revocation.url", "required for style github"),
    ({"acme": acme(revocation={"style": "none"})}, "networks.acme.revocation.manual_url", "required for style none"),
    ({"acme": acme(revocation={"style": "rfc7009", "url": "https://a.example/r", "when": "now"})},
     "networks.acme.revocation.when", "unknown field"),
    ({"acme": acme(revocation={"style": "meta", "url": "https://g.example/{user}/permissions"})},
     "networks.acme.revocation.url", "placeholder"),
    ({"acme": acme(client_id=None)}, "networks.acme.client_id", "not configured"),
    ({"acme": acme(client_secret=None)}, "networks.acme.client_secret", "not configured"),
    ({"acme": acme(client_id_env="ACME_ID")}, "networks.acme.client_id", "not both"),
    ({"acme": acme(**SECRET_ENV)}, "networks.acme.client_secret_env", "ACME_SECRET is not set"),
    ({"Acme!": acme()}, "networks.Acme!", "a-z, 0-9"),
    ({"a" * 65: acme()}, "networks." + "a" * 65, "at most 64"),
])
def test_each_mistake_names_the_network_and_the_field(tmp_path, entries, field, words):
    err = fails(tmp_path, entries)
    assert err.field == field, err
    assert field in str(err)
    assert words in err.problem


@pytest.mark.parametrize("entries, field, words", [
    ({"acme": acme(authorize_params={"state": "fixed"})}, "networks.acme.authorize_params.state", "Ownstory itself"),
    ({"acme": acme(authorize_params={"redirect_uri": "https://evil.example"})},
     "networks.acme.authorize_params.redirect_uri", "Ownstory itself"),
    ({"acme": acme(token_params={"client_id": "other"})}, "networks.acme.token_params.client_id", "Ownstory itself"),
    ({"acme": acme(authorize_params={"scope": "admin"})}, "networks.acme.authorize_params.scope", "Ownstory itself"),
    ({"acme": acme(authorize_params={"max_age": 3})}, "networks.acme.authorize_params.max_age", "string"),
    ({"acme": acme(token_params="resource=x")}, "networks.acme.token_params", "table of strings"),
    ({"acme": acme(issuer="acme.example")}, "networks.acme.issuer", "http(s) URL"),
    ({"acme": acme(authorization_response_iss_parameter_supported=True)}, "networks.acme.issuer", "required"),
    ({"acme": acme(issuer="https://acme.example", authorization_response_iss_parameter_supported="yes")},
     "networks.acme.authorization_response_iss_parameter_supported", "true or false"),
])
def test_issuer_and_extra_parameters_are_checked(tmp_path, entries, field, words):
    err = fails(tmp_path, entries)
    assert err.field == field, err
    assert words in err.problem


def test_extra_parameters_and_the_issuer_load(tmp_path):
    entry = acme(issuer="https://acme.example", authorize_params={"prompt": "consent", "access_type": "offline"},
                 token_params={"resource": "https://api.acme.example"})
    acme_network = load(tmp_path, {"acme": entry})["acme"]
    assert acme_network.issuer == "https://acme.example" and not acme_network.iss_required
    assert dict(acme_network.authorize_params) == {"prompt": "consent", "access_type": "offline"}
    assert dict(acme_network.token_params) == {"resource": "https://api.acme.example"}


def test_an_unknown_section_is_refused(tmp_path):
    err = fails(tmp_path, toml({"acme": acme()}) + "\n[netwerks.typo]\nname = 'x'\n")
    assert err.field == "netwerks"


def test_an_unset_variable_is_named_and_its_value_never_shown(tmp_path):
    entry = acme(**SECRET_ENV)
    err = fails(tmp_path, {"acme": entry}, environ={"ACME_SECRET": ""})
    assert "ACME_SECRET" in err.problem
    # A set variable loads; its value appears in no message or repr.
    networks = load(tmp_path, {"acme": entry}, environ={"ACME_SECRET": SECRET})
    assert SECRET not in repr(networks["acme"])


def test_the_app_refuses_to_start_with_a_broken_catalogue(make_app, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(toml({"acme": acme(token_endpoint_auth="magic")}))
    with pytest.raises(ConfigError) as err:
        make_app(networks=path)
    assert str(err.value).startswith(f"{path}: networks.acme.token_endpoint_auth: ")


@pytest.mark.parametrize("revocation, ends_grant", [
    ({"style": "rfc7009", "url": "https://a.example/r"}, True),  # RFC 7009 2.1 allows it
    ({"style": "github", "url": "https://a.example/r"}, True),
    ({"style": "meta", "url": "https://a.example/{account_id}/permissions"}, True),
    ({"style": "reddit", "url": "https://a.example/r"}, False),
    ({"style": "none", "manual_url": "https://a.example/settings"}, False),
    ({"style": "rfc7009", "url": "https://a.example/r", "ends_grant": False}, False),
    ({"style": "reddit", "url": "https://a.example/r", "ends_grant": True}, True),
])
def test_whether_revoking_ends_the_whole_grant(tmp_path, revocation, ends_grant):
    assert load(tmp_path, {"acme": acme(revocation=revocation)})["acme"].revocation.ends_grant is ends_grant


@pytest.mark.parametrize("revocation, words", [
    ({"style": "rfc7009", "url": "https://a.example/r", "ends_grant": "yes"}, "true or false"),
    ({"style": "none", "manual_url": "https://a.example/settings", "ends_grant": True}, "ends no grant"),
])
def test_ends_grant_mistakes_are_named(tmp_path, revocation, words):
    err = fails(tmp_path, {"acme": acme(revocation=revocation)})
    assert err.field == "networks.acme.revocation.ends_grant" and words in err.problem


@pytest.mark.parametrize("limit, expected", [(None, None), (1, 1), (4, 4), (64, 64)])
def test_a_network_may_limit_the_revocation_calls_it_takes_at_once(tmp_path, limit, expected):
    revocation = {"style": "rfc7009", "url": "https://a.example/r"}
    if limit is not None:
        revocation["max_in_flight"] = limit
    assert load(tmp_path, {"acme": acme(revocation=revocation)})["acme"].revocation.max_in_flight == expected


@pytest.mark.parametrize("revocation, words", [
    ({"style": "rfc7009", "url": "https://a.example/r", "max_in_flight": 0}, "from 1 to 64, got 0"),
    ({"style": "rfc7009", "url": "https://a.example/r", "max_in_flight": 65}, "from 1 to 64, got 65"),
    ({"style": "rfc7009", "url": "https://a.example/r", "max_in_flight": "4"}, "got a string"),
    ({"style": "rfc7009", "url": "https://a.example/r", "max_in_flight": 2.5}, "got a number"),
    ({"style": "rfc7009", "url": "https://a.example/r", "max_in_flight": True}, "got true/false"),
    ({"style": "none", "manual_url": "https://a.example/settings", "max_in_flight": 2}, "makes no calls"),
])
def test_max_in_flight_mistakes_are_named(tmp_path, revocation, words):
    err = fails(tmp_path, {"acme": acme(revocation=revocation)})
    assert err.field == "networks.acme.revocation.max_in_flight" and words in err.problem, err
