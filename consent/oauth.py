"""Outbound OAuth 2 to the networks: Authlib sessions with a timeout on every call."""
from __future__ import annotations

import re

from authlib.integrations.requests_client import OAuth2Session

from consent.networks import Network

TIMEOUT = (5, 10)  # seconds to connect, seconds to wait for an answer


class NetworkHttp:
    """Makes Authlib OAuth2Sessions for networks. Services take one as an argument, so the views,
    the worker and the tests can each choose the timeouts."""

    def __init__(self, timeout: tuple[float, float] = TIMEOUT, user_agent: str = "Ownstory/1") -> None:
        self.timeout = timeout
        self.user_agent = user_agent  # some networks (Reddit) throttle the default python-requests agent

    def session(self, network: Network, *, token: dict | None = None, redirect_uri: str | None = None) -> OAuth2Session:
        """A session that signs requests with `token`. It never refreshes on its own (no
        token_endpoint is set): grants.access_token refreshes and stores the new tokens itself.
        It holds no default scope, so a refresh asks for no more than was granted (RFC 6749 6)."""
        oauth = OAuth2Session(
            client_id=network.client_id,
            client_secret=network.client_secret,
            token_endpoint_auth_method=network.token_endpoint_auth,
            revocation_endpoint_auth_method=network.token_endpoint_auth,
            redirect_uri=redirect_uri,
            token=token,
            code_challenge_method="S256",
            default_timeout=self.timeout,
        )
        oauth.headers["User-Agent"] = self.user_agent
        return oauth


def fetch_userinfo(oauth: OAuth2Session, network: Network) -> dict:
    """The userinfo JSON object. Raises requests' errors, or ValueError for an answer that is not one."""
    response = oauth.get(network.userinfo_url, headers={"Accept": "application/json"})
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError("the userinfo answer is not a JSON object")
    return data


def error_code(value) -> str:
    """An OAuth error code fit for a log line; anything else a network sent is not repeated."""
    return value if isinstance(value, str) and re.fullmatch(r"[a-z_]{1,64}", value) else "(unrecognised)"
