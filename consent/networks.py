"""The network catalogue (config/networks.toml): loaded and validated once, at start-up."""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from app.settings import ConfigError
from consent import discovery

KEY_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")  # 64: the width of grants.network
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
REVOCATION_STYLES = ("rfc7009", "github", "meta", "reddit", "none")
STYLES_WITH_URL = ("rfc7009", "github", "meta", "reddit")
URL_FIELDS = ("authorize_url", "token_url", "userinfo_url")
TEXT_FIELDS = ("name", "account_id_field", "handle_field")
ISSUER_FIELDS = ("issuer", "discovery_url", "authorization_response_iss_parameter_supported")
REQUIRED = ("name", *URL_FIELDS, "account_id_field", "handle_field", "scopes", "token_endpoint_auth")
OPTIONAL = ("client_id", "client_id_env", "client_secret", "client_secret_env", "revocation", *ISSUER_FIELDS,
            "authorize_params", "token_params", "introspection_url")
REVOCATION_FIELDS = ("style", "url", "manual_url", "ends_grant", "max_in_flight")
MAX_IN_FLIGHT = 64  # the most a catalogue may allow: beyond a worker's threads it would mean no limit
# Styles whose revocation may end the app's whole authorization for the account, not just the token
# handed over: RFC 7009 2.1 allows it, and GitHub's and Meta's APIs do it. An entry may say otherwise.
ENDS_GRANT_BY_DEFAULT = ("rfc7009", "github", "meta")
# Filled in at load time. {account_id} stays in a revocation URL: it is filled per grant (Meta).
LOAD_PLACEHOLDERS = ("{base_url}", "{client_id}")
GRANT_PLACEHOLDERS = ("{account_id}",)
# What Ownstory itself puts on the authorization and token requests: an entry's extra parameters may not change it.
RESERVED_PARAMS = frozenset(("state", "code_challenge", "code_challenge_method", "code_verifier", "redirect_uri",
                             "client_id", "client_secret", "response_type", "scope", "grant_type", "code"))
# An OpenID provider found by discovery needs only its name, issuer and client credentials.
DISCOVERED_DEFAULTS = {"account_id_field": "sub", "handle_field": "preferred_username", "scopes": ["openid", "profile"]}


@dataclass(frozen=True)
class Revocation:
    style: str
    url: str = ""  # may hold {account_id}, to be filled from the grant
    manual_url: str = ""
    # Revoking one token may end every token of the account's authorization, so a token that only
    # proved control (/forget, a refused connect) is dropped unrevoked when a member holds the account.
    ends_grant: bool = False
    # The revocation calls one worker process makes to the network at once (None: as many as it has threads).
    # A small server (a Mastodon instance) may refuse, or fall over under, a crowd's leaving all at once.
    max_in_flight: int | None = None


@dataclass(frozen=True)
class Network:
    """One network Ownstory can connect to. The client secret never shows in repr or str."""

    key: str
    name: str
    authorize_url: str
    token_url: str
    userinfo_url: str
    account_id_field: str  # a dotted path into the userinfo JSON, e.g. "data.id" for X
    handle_field: str
    scopes: tuple[str, ...]
    client_id: str
    client_secret: str = field(repr=False)
    token_endpoint_auth: str
    revocation: Revocation
    issuer: str = ""  # RFC 9207: an authorization response's iss must name it
    iss_required: bool = False  # the provider always sends iss (authorization_response_iss_parameter_supported)
    introspection_url: str = ""
    authorize_params: tuple[tuple[str, str], ...] = ()  # extra parameters on the authorization request
    token_params: tuple[tuple[str, str], ...] = ()  # and on the token request

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


class Networks(Mapping[str, Network]):
    """The catalogue: an immutable mapping from key to Network, in file order."""

    def __init__(self, networks: Mapping[str, Network]) -> None:
        self._networks = MappingProxyType(dict(networks))

    def __getitem__(self, key: str) -> Network:
        return self._networks[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._networks)

    def __len__(self) -> int:
        return len(self._networks)

    def __repr__(self) -> str:
        return f"Networks({list(self._networks)!r})"


def load_networks(path: Path, base_url: str, environ: Mapping[str, str] | None = None,
                  timeout: tuple[float, float] = discovery.TIMEOUT) -> Networks:
    """Read and check the catalogue, reading the discovery metadata of entries that ask for it.
    Raises ConfigError naming the file, the network and the field."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(where, "(file)", "not found; set OWNSTORY_NETWORKS to the network catalogue") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, "(file)", f"cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "(file)", f"is not valid TOML: {exc}") from None  # the message gives the line
    for key in data:
        if key != "networks":
            raise ConfigError(where, key, "unknown section; the catalogue holds only [networks.<key>] tables")
    entries = data.get("networks", {})
    if not isinstance(entries, dict):
        raise ConfigError(where, "networks", "must be a table of [networks.<key>] entries")
    reader = _Reader(where, base_url.rstrip("/"), environ, timeout)
    return Networks({key: reader.network(key, entry) for key, entry in entries.items()})


class _Reader:
    """Checks one entry at a time, so every message can name its network and field."""

    def __init__(self, where: str, base_url: str, environ: Mapping[str, str],
                 timeout: tuple[float, float] = discovery.TIMEOUT) -> None:
        self.where, self.base_url, self.environ, self.timeout = where, base_url, environ, timeout

    def fail(self, key: str, name: str, problem: str) -> ConfigError:
        return ConfigError(self.where, f"networks.{key}.{name}" if name else f"networks.{key}", problem)

    def network(self, key: str, entry) -> Network:
        if not KEY_PATTERN.fullmatch(key):
            raise self.fail(key, "", "a network key may hold only a-z, 0-9, _ and - (at most 64 characters)")
        if not isinstance(entry, dict):
            raise self.fail(key, "", "must be a table")
        self.no_unknown(key, "", entry, REQUIRED + OPTIONAL)
        client_id = self.credential(key, entry, "client_id")
        discovered = self.discover(key, entry, client_id)
        entry = self.with_discovered(entry, discovered)
        for name in REQUIRED:
            if name not in entry:
                found = " (nor in the provider's discovery metadata)" if discovered else ""
                raise self.fail(key, name, "is required" + found)
        text = {name: self.text(key, name, entry[name]) for name in TEXT_FIELDS}
        urls = {name: self.url(key, name, entry[name], client_id) for name in URL_FIELDS}
        if self.flag(key, "authorization_response_iss_parameter_supported", entry) and "issuer" not in entry:
            raise self.fail(key, "issuer", "is required when authorization_response_iss_parameter_supported is true")
        auth = self.text(key, "token_endpoint_auth", entry["token_endpoint_auth"])
        if auth not in AUTH_METHODS:
            raise self.fail(key, "token_endpoint_auth", f"must be one of {', '.join(AUTH_METHODS)}, not {auth!r}")
        return Network(
            key=key, **text, **urls,
            scopes=self.scopes(key, entry["scopes"]),
            client_id=client_id,
            client_secret=self.credential(key, entry, "client_secret"),
            token_endpoint_auth=auth,
            revocation=self.revocation(key, entry.get("revocation"), client_id),
            issuer=self.url(key, "issuer", entry["issuer"], client_id) if "issuer" in entry else "",
            iss_required=self.flag(key, "authorization_response_iss_parameter_supported", entry),
            introspection_url=(self.url(key, "introspection_url", entry["introspection_url"], client_id)
                               if "introspection_url" in entry else ""),
            authorize_params=self.params(key, "authorize_params", entry.get("authorize_params", {})),
            token_params=self.params(key, "token_params", entry.get("token_params", {})),
        )

    def discover(self, key: str, entry: dict, client_id: str) -> dict:
        """The fields the provider's metadata gives, read when the entry gives a discovery_url, or an
        issuer without its endpoints; {} otherwise (a fully hand-typed entry fetches nothing)."""
        if "discovery_url" in entry:
            urls = [self.url(key, "discovery_url", entry["discovery_url"], client_id)]
        elif "issuer" in entry and any(name not in entry for name in URL_FIELDS):
            urls = discovery.metadata_urls(self.url(key, "issuer", entry["issuer"], client_id))
        else:
            return {}
        issuer = self.url(key, "issuer", entry["issuer"], client_id) if "issuer" in entry else None
        field_name = "discovery_url" if "discovery_url" in entry else "issuer"
        try:
            return discovery.catalogue_fields(discovery.fetch_metadata(urls, self.timeout), issuer)
        except discovery.DiscoveryError as exc:
            raise self.fail(key, field_name, f"discovery failed: {exc}") from None

    @staticmethod
    def with_discovered(entry: dict, discovered: dict) -> dict:
        """The entry with what discovery found filled in under it: a hand-typed field always wins."""
        if not discovered:
            return entry
        fields = {name: value for name, value in discovered.items() if name != "revocation_url"}
        merged = {**DISCOVERED_DEFAULTS, **fields, **entry}
        revocation_url = discovered.get("revocation_url")
        table = entry.get("revocation")
        if table is None and revocation_url:
            merged["revocation"] = {"style": "rfc7009", "url": revocation_url}
        elif isinstance(table, dict) and table.get("style") == "rfc7009" and "url" not in table and revocation_url:
            merged["revocation"] = {**table, "url": revocation_url}
        return merged

    def flag(self, key: str, name: str, entry: dict) -> bool:
        value = entry.get(name, False)
        if not isinstance(value, bool):
            raise self.fail(key, name, f"must be true or false, got {_kind(value)}")
        return value

    def params(self, key: str, name: str, table) -> tuple[tuple[str, str], ...]:
        """Extra request parameters: a table of strings, none that Ownstory sets itself."""
        if not isinstance(table, dict):
            raise self.fail(key, name, f'must be a table of strings, e.g. {{ prompt = "consent" }}, got {_kind(table)}')
        for param, value in table.items():
            if param in RESERVED_PARAMS:
                raise self.fail(key, f"{name}.{param}", "is set by Ownstory itself and cannot be changed here")
            if not isinstance(value, str):
                raise self.fail(key, f"{name}.{param}", f"must be a string, got {_kind(value)}")
        return tuple(table.items())

    def no_unknown(self, key: str, prefix: str, table: dict, known: tuple[str, ...]) -> None:
        for name in table:
            if name not in known:
                raise self.fail(key, prefix + name, f"unknown field; expected one of {', '.join(known)}")

    def text(self, key: str, name: str, value) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, name, f"must be a non-empty string, got {_kind(value)}")
        return value.strip()

    def url(self, key: str, name: str, value, client_id: str, allow: tuple[str, ...] = ()) -> str:
        url = self.text(key, name, value).replace("{base_url}", self.base_url).replace("{client_id}", client_id)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(key, name, f"must be an http(s) URL, got {value!r}")
        rest = url
        for placeholder in allow:
            rest = rest.replace(placeholder, "")
        if "{" in rest or "}" in rest:
            usable = ", ".join(LOAD_PLACEHOLDERS + allow)
            raise self.fail(key, name, f"holds an unknown {{placeholder}}; usable here: {usable}")
        return url

    def scopes(self, key: str, value) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
            raise self.fail(key, "scopes", f"must be a list of non-empty strings, got {_kind(value)}")
        if any(" " in s for s in value):
            raise self.fail(key, "scopes", "give one scope per list item, without spaces")
        return tuple(s.strip() for s in value)

    def credential(self, key: str, entry: dict, name: str) -> str:
        """client_id / client_secret, given inline or named by an environment variable."""
        env_name = name + "_env"
        if name in entry and env_name in entry:
            raise self.fail(key, name, f"give {name} or {env_name}, not both")
        if name in entry:
            return self.text(key, name, entry[name])
        if env_name not in entry:
            raise self.fail(key, name, f"is not configured: set {name}, or {env_name} to an environment variable")
        variable = self.text(key, env_name, entry[env_name])
        value = self.environ.get(variable, "").strip()
        if not value:
            # Name the variable only; its value (a secret) never goes into a message.
            raise self.fail(key, env_name, f"the environment variable {variable} is not set")
        return value

    def revocation(self, key: str, table, client_id: str) -> Revocation:
        if table is None:
            raise self.fail(key, "revocation", "is required: add a [networks.<key>.revocation] table with a style")
        if not isinstance(table, dict):
            raise self.fail(key, "revocation", "must be a table")
        self.no_unknown(key, "revocation.", table, REVOCATION_FIELDS)
        if "style" not in table:
            raise self.fail(key, "revocation.style", "is required")
        style = self.text(key, "revocation.style", table["style"])
        if style not in REVOCATION_STYLES:
            raise self.fail(key, "revocation.style", f"must be one of {', '.join(REVOCATION_STYLES)}, not {style!r}")
        url = manual = ""
        if style in STYLES_WITH_URL:
            if not table.get("url"):
                raise self.fail(key, "revocation.url", f"is required for style {style}")
            url = self.url(key, "revocation.url", table["url"], client_id, allow=GRANT_PLACEHOLDERS)
        elif table.get("url"):
            raise self.fail(key, "revocation.url", "style none has no API; give manual_url instead")
        if style == "none" and not table.get("manual_url"):
            raise self.fail(key, "revocation.manual_url", "is required for style none: where people revoke by hand")
        if table.get("manual_url"):
            manual = self.url(key, "revocation.manual_url", table["manual_url"], client_id)
        ends_grant = table.get("ends_grant", style in ENDS_GRANT_BY_DEFAULT)
        if not isinstance(ends_grant, bool):
            raise self.fail(key, "revocation.ends_grant", f"must be true or false, got {_kind(ends_grant)}")
        if ends_grant and style == "none":
            raise self.fail(key, "revocation.ends_grant", "style none revokes nothing, so it ends no grant")
        return Revocation(style, url, manual, ends_grant, self.max_in_flight(key, style, table))

    def max_in_flight(self, key: str, style: str, table: dict) -> int | None:
        if "max_in_flight" not in table:
            return None
        value = table["max_in_flight"]
        if style == "none":
            raise self.fail(key, "revocation.max_in_flight", "style none makes no calls to limit")
        problem = max_in_flight_problem(value)
        if problem:
            raise self.fail(key, "revocation.max_in_flight", problem)
        return value


_KINDS = {bool: "true/false", int: "a whole number", float: "a number", list: "a list", dict: "a table",
          str: "an empty string"}


def max_in_flight_problem(value) -> str | None:
    """What is wrong with a max_in_flight (a network's, or a store's in the data map), or None: the value itself is
    shown only when it is a number, since a misplaced secret must not reach a message."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IN_FLIGHT:
        shown = value if isinstance(value, int) and not isinstance(value, bool) else (
            "a string" if isinstance(value, str) else _kind(value))
        return f"must be a whole number from 1 to {MAX_IN_FLIGHT}, got {shown}"
    return None


def _kind(value) -> str:
    """What was given, without the value itself: a misplaced secret must not reach a message."""
    return _KINDS.get(type(value), type(value).__name__)
