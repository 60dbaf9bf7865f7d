"""The small checks every store kind's loader shares; each ConfigError names the file, the store and the field."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app.settings import ConfigError
from consent.networks import max_in_flight_problem
from erasure.stores.kinds import IDENTITY_KINDS


def string(where: str, label: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, label, "is required and must be a non-empty string")
    return value.strip()


def identity_and_network(where: str, label: str, raw: Mapping[str, Any],
                         networks: Mapping | None) -> tuple[str, str | None]:
    """An entry's `identity` and `network`, as for tables: a network goes with account and handle only,
    and must be in the catalogue when one is given."""
    identity = raw.get("identity")
    if identity not in IDENTITY_KINDS:
        raise ConfigError(where, f"{label}.identity", f"must be one of {', '.join(IDENTITY_KINDS)}")
    network = raw.get("network")
    if identity in ("account", "handle"):
        network = string(where, f"{label}.network", network)
        if networks is not None and network not in networks:
            raise ConfigError(where, f"{label}.network", f"{network!r} is not in the network catalogue")
    elif network is not None:
        raise ConfigError(where, f"{label}.network", "only account and handle identities name a network")
    return identity, network


NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifier(where: str, label: str, value: Any) -> str:
    """A plain table or column name: it is quoted in SQL, never pasted, but a name with spaces is a mistake."""
    value = string(where, label, value)
    if not NAME.match(value):
        raise ConfigError(where, label, f"{value!r} is not a plain table or column name")
    return value


def from_environment(where: str, label: str, raw: Mapping[str, Any], field: str, environ: Mapping[str, str]) -> str:
    """The value of the environment variable that `<field>_env` names: credentials never sit in the file."""
    var = string(where, f"{label}.{field}_env", raw.get(f"{field}_env"))
    value = environ.get(var, "")
    if not value:
        raise ConfigError(where, f"{label}.{field}_env", f"the environment variable {var} is not set")
    return value


def keys_nothing_personal(where: str, label: str, listed: Any, what: str, example: str, belongs: str
                          ) -> tuple[str, ...]:
    """A redis or s3 store's `holds_no_personal_data`: the keys (globs, prefixes: `what`) the map leaves out on
    purpose, so that `flask datamap check` counts only those nobody has looked at. Never one with {identity}: keys
    named after a person hold data about them, and belong in the `belongs` section."""
    if not isinstance(listed, list) or not all(isinstance(k, str) and k.strip() for k in listed):
        raise ConfigError(where, label, f"must be a list of {what}, e.g. {example}")
    for key in listed:
        if "{identity}" in key:
            raise ConfigError(where, label, f"{key!r} holds {{identity}}: keys named after a person hold data about "
                                            f"them, and belong in {belongs}")
    return tuple(listed)


def max_in_flight(where: str, label: str, raw: Mapping[str, Any]) -> int | None:
    """A store's `max_in_flight`, checked as a network's is, or None when not given."""
    if "max_in_flight" not in raw:
        return None
    problem = max_in_flight_problem(raw["max_in_flight"])
    if problem:
        raise ConfigError(where, f"{label}.max_in_flight", problem)
    return raw["max_in_flight"]
