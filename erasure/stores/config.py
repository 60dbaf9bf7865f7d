"""The small checks every store kind's loader shares; each ConfigError names the file, the store and the field."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.settings import ConfigError
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
