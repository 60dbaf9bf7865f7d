"""Demo Social as a strict certified provider, each behaviour behind its own setting (off unless noted):

- DEMO_ISSUE_ISS: every authorization response names the issuer in `iss` (RFC 9207);
- DEMO_ISSUER: the issuer it names (default: the URL Demo Social is served at), which a test may set
  to another provider's to act out a mix-up;
- DEMO_DISCOVERY (on): metadata at /.well-known/oauth-authorization-server and /.well-known/openid-configuration;
- DEMO_OFFLINE_NEEDS_CONSENT_PROMPT: no refresh token unless the authorization request said prompt=consent,
  as certified providers drop offline_access without it;
- DEMO_RESOURCES: the resources it serves, to which tokens are bound when asked (RFC 8707, demo/strict_resources.py).
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Flask, Response, current_app, request, url_for

STRICT_DEFAULTS = {
    "DEMO_ISSUE_ISS": False,
    "DEMO_ISSUER": "",
    "DEMO_DISCOVERY": True,
    "DEMO_OFFLINE_NEEDS_CONSENT_PROMPT": False,
}
MAX_REMEMBERED_CODES = 10_000  # codes live five minutes; a toy provider forgets the oldest past this


def issuer() -> str:
    return current_app.config["DEMO_ISSUER"] or request.url_root.rstrip("/")


class DemoIssuer(IssuerParameter):
    def get_issuer(self) -> str | None:
        return issuer() if current_app.config["DEMO_ISSUE_ISS"] else None


def name_issuer(server: AuthorizationServer, response: Response) -> Response:
    """An error answered before Authlib builds the response (a refused request) names the issuer too."""
    DemoIssuer().add_issuer_parameter(server, response)
    return response


def init_strict(app: Flask, server: AuthorizationServer) -> None:
    for name, value in STRICT_DEFAULTS.items():
        app.config.setdefault(name, value)
    server.register_extension(DemoIssuer())
    _offline_only_with_consent_prompt(server)


def _offline_only_with_consent_prompt(server: AuthorizationServer) -> None:
    """Remember which codes were asked for with prompt=consent; only those get a refresh token."""
    consented: dict[str, None] = {}  # an ordered set

    def remember(_server, response) -> None:
        location = getattr(response, "location", None) or ""
        code = parse_qs(urlsplit(location).query).get("code", [""])[0]
        if code and request.values.get("prompt") == "consent":
            consented[code] = None
            while len(consented) > MAX_REMEMBERED_CODES:
                consented.pop(next(iter(consented)))

    server.register_hook("after_create_authorization_response", remember)
    default = server._token_generators["default"]

    def generate(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        if current_app.config["DEMO_OFFLINE_NEEDS_CONSENT_PROMPT"]:
            asked = consented.pop(request.form.get("code", ""), "missing") is None
            include_refresh_token = include_refresh_token and asked
        return default(grant_type=grant_type, client=client, user=user, scope=scope, expires_in=expires_in,
                       include_refresh_token=include_refresh_token)

    server.register_token_generator("authorization_code", generate)


def metadata_document(scopes: list[str], auth_methods: list[str]) -> dict:
    """RFC 8414 metadata, which is also what OpenID Connect discovery reads."""
    document = {
        "issuer": issuer(),
        "authorization_endpoint": url_for(".authorize", _external=True),
        "token_endpoint": url_for(".token", _external=True),
        "revocation_endpoint": url_for(".revoke", _external=True),
        "introspection_endpoint": url_for(".introspect", _external=True),
        "userinfo_endpoint": url_for(".userinfo", _external=True),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
    }
    if current_app.config["DEMO_ISSUE_ISS"]:
        document["authorization_response_iss_parameter_supported"] = True
    return document
