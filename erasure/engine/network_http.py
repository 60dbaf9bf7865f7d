"""The worker's HTTP sessions to the networks, with the proxy settings read once, when the worker starts."""
from __future__ import annotations

import os
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import should_bypass_proxies


class ProxySettings:
    """HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (and REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE), as they were
    when the worker started, with each host's proxy decided once.

    requests reads them again from the environment on every call (about a fifth of a revocation's CPU). They are
    still honoured as requests honours them, only not re-read: a change to the worker's environment after it
    started takes effect when it restarts, as for the rest of its configuration.
    """

    def __init__(self) -> None:
        self.proxies = urllib.request.getproxies_environment()  # what requests itself reads, lowercase first
        self.no_proxy = self.proxies.pop("no", None)
        self.ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._by_origin: dict[tuple[str, str], dict[str, str]] = {}

    def for_url(self, url: str) -> dict[str, str]:
        """The proxies a call to `url` goes through (none when NO_PROXY names its host)."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        found = self._by_origin.get(origin)
        if found is None:
            proxy = self.proxies.get(parts.scheme) or self.proxies.get("all")
            found = {}
            if proxy and not should_bypass_proxies(url, no_proxy=self.no_proxy or ""):
                found = {parts.scheme: proxy}
            self._by_origin[origin] = found
        return found


class NetworkSession(requests.Session):
    """A requests.Session that takes proxies and the CA bundle from the settings read at start-up, never from
    the environment at each call. Nor does it read ~/.netrc: a network's credentials come from the catalogue."""

    def __init__(self, settings: ProxySettings) -> None:
        super().__init__()
        self.trust_env = False
        self.settings = settings

    def merge_environment_settings(self, url, proxies, stream, verify, cert) -> dict[str, Any]:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        merged["proxies"] = {**self.settings.for_url(url), **merged["proxies"]}  # a call's own proxies win
        if self.settings.ca_bundle and (verify is True or verify is None) and merged["verify"] is True:
            merged["verify"] = self.settings.ca_bundle
        return merged
