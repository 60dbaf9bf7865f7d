"""Demo Social acting like a strict certified provider, one behaviour at a time, under the core suites.

A test marked `@pytest.mark.demo_behaviours("rotation", ...)` runs plain and then once per named behaviour:
for the length of the test the session's Demo Social has that behaviour on (demo/strict*.py), and the catalogue
the app is built on is the one an operator would write for such a provider. Choose, per test, the behaviours
it has something to say about: the suites run on two databases.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, networks_toml

_UNSET = object()


def resource(url: str) -> str:
    """The resource Demo Social serves under the "resource" behaviour (RFC 8707)."""
    return f"{url}/api"


def _typed(**fields: str) -> Callable[[str], str]:
    """The hand-typed Demo Social entry with `fields` added to it: TOML values, where {url} is Demo Social's URL
    and {resource} the resource it serves."""
    anchor = 'token_endpoint_auth = "client_secret_basic"\n'

    def catalogue(url: str) -> str:
        lines = "".join(f"{name} = {value.format(url=url, resource=resource(url))}\n" for name, value in fields.items())
        return networks_toml(url).replace(anchor, anchor + lines)

    return catalogue


def _discovered(url: str) -> str:
    """Four lines and the scopes: everything else comes from Demo Social's metadata."""
    return f"""
[networks.demo]
name = "Demo Social"
issuer = "{url}"
scopes = ["profile", "posts"]
client_id = "{DEMO_CLIENT_ID}"
client_secret = "{DEMO_CLIENT_SECRET}"
"""


@dataclass(frozen=True)
class Behaviour:
    name: str
    config: dict = field(default_factory=dict)  # Demo Social's settings for it; a callable value is given the URL
    catalogue: Callable[[str], str] = _typed()  # the networks.toml for Demo Social's URL


BEHAVIOURS = {b.name: b for b in (
    Behaviour("plain"),
    Behaviour("iss", {"DEMO_ISSUE_ISS": True},
              _typed(issuer='"{url}"', authorization_response_iss_parameter_supported="true")),
    Behaviour("discovery", {"DEMO_DISCOVERY": True}, _discovered),
    Behaviour("ends_grant", {"DEMO_REVOKE_ENDS_GRANT": True}),
    Behaviour("unsupported_token_type", {"DEMO_ACCESS_TOKEN_REVOCATION_UNSUPPORTED": True}),
    Behaviour("offline_needs_consent", {"DEMO_OFFLINE_NEEDS_CONSENT_PROMPT": True},
              _typed(authorize_params='{{ prompt = "consent" }}')),
    Behaviour("rotation", {"DEMO_ROTATE_REFRESH_TOKENS": True}),
    Behaviour("resource", {"DEMO_RESOURCES": lambda url: [resource(url)]},
              _typed(authorize_params='{{ resource = "{resource}" }}', token_params='{{ resource = "{resource}" }}')),
)}


def pytest_generate_tests(metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("demo_behaviours")
    if marker is None:
        return
    unknown = [name for name in marker.args if name not in BEHAVIOURS]
    if unknown:
        raise ValueError(f"{metafunc.definition.nodeid}: no Demo Social behaviour {unknown}; known: {list(BEHAVIOURS)}")
    metafunc.parametrize("demo_behaviour", ["plain", *marker.args], indirect=True)


@pytest.fixture
def demo_behaviour(request, demo_network) -> Iterator[Behaviour]:
    """The behaviour Demo Social has for this test ("plain" unless the test is marked), put back after it."""
    behaviour = BEHAVIOURS[getattr(request, "param", "plain")]
    config = demo_network.app.config
    settings = {name: value(demo_network.url) if callable(value) else value for name, value in behaviour.config.items()}
    saved = {name: config.get(name, _UNSET) for name in settings}
    config.update(settings)
    yield behaviour
    for name, value in saved.items():
        if value is _UNSET:
            config.pop(name, None)
        else:
            config[name] = value
