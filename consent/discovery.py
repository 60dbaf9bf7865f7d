"""Reading a provider's discovery metadata (RFC 8414, OpenID Connect Discovery) into catalogue fields."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests

# Read once at start-up: a provider that does not answer quickly stops start-up quickly, naming the entry.
TIMEOUT = (3, 5)  # seconds to connect, seconds to wait for an answer
AUTH_METHODS = ("client_secret_basic", "client_secret_post")  # ours, in the order we prefer them


class DiscoveryError(Exception):
    """The metadata could not be read or cannot be used; the message says why, in one line."""


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata lives: OpenID Connect's (appended to the issuer), then RFC 8414's
    (inserted before the issuer's path). Certified OpenID providers publish the first."""
    parts = urlsplit(issuer.rstrip("/"))
    oidc = issuer.rstrip("/") + "/.well-known/openid-configuration"
    rfc8414 = urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + parts.path, "", ""))
    return [oidc] if oidc == rfc8414 else [oidc, rfc8414]


def fetch_metadata(urls: list[str], timeout: tuple[float, float] = TIMEOUT) -> dict:
    """The first metadata document found at `urls` (a 404 tries the next). Raises DiscoveryError."""
    for url in urls:
        try:
            response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"},
                                    allow_redirects=False)
        except requests.Timeout:
            raise DiscoveryError(f"{url} did not answer within {timeout[0] + timeout[1]:.0f} seconds") from None
        except requests.RequestException:
            raise DiscoveryError(f"{url} could not be reached") from None
        if response.status_code == 404 and url != urls[-1]:
            continue
        if response.status_code != 200:
            raise DiscoveryError(f"{url} answered HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise DiscoveryError(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise DiscoveryError(f"{url} did not answer a JSON object")
        return document
    raise DiscoveryError("no metadata URL to read")  # pragma: no cover - urls is never empty


def catalogue_fields(document: dict, issuer: str | None) -> dict:
    """The catalogue fields the metadata gives. `issuer` is the configured one, which the document must
    name exactly (RFC 8414 3.3), or None when the entry gave only a discovery_url."""
    named = document.get("issuer")
    if not isinstance(named, str) or not named:
        raise DiscoveryError("the metadata names no issuer")
    if issuer is not None and named != issuer:
        raise DiscoveryError(f"the metadata names the issuer {named!r}, not {issuer!r}")
    challenges = document.get("code_challenge_methods_supported") or []
    if not isinstance(challenges, list) or "S256" not in challenges:
        raise DiscoveryError("the provider does not list S256 in code_challenge_methods_supported; "
                             "Ownstory always uses PKCE with S256")
    fields: dict = {"issuer": named}
    for ours, theirs in (("authorize_url", "authorization_endpoint"), ("token_url", "token_endpoint"),
                         ("userinfo_url", "userinfo_endpoint"), ("introspection_url", "introspection_endpoint")):
        if isinstance(document.get(theirs), str) and document[theirs]:
            fields[ours] = document[theirs]
    # RFC 8414 2: when the list is absent, client_secret_basic is the default.
    offered = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    usable = [method for method in AUTH_METHODS if isinstance(offered, list) and method in offered]
    if usable:
        fields["token_endpoint_auth"] = usable[0]
    if isinstance(document.get("revocation_endpoint"), str) and document["revocation_endpoint"]:
        fields["revocation_url"] = document["revocation_endpoint"]
    if document.get("authorization_response_iss_parameter_supported") is True:
        fields["authorization_response_iss_parameter_supported"] = True
    return fields
