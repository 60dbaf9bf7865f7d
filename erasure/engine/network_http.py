"""The worker's HTTP sessions to the networks, with the proxy settings read once, when the worker starts."""
from __future__ import annotations

import os
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import should_bypass_proxies

FORM = "application/x-www-form-urlencoded"


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
    the environment at each call. Nor does it read ~/.netrc: a network's credentials come from the catalogue.

    A call that follows no redirect and sends no cookie, file or hook of its own (every revocation) goes the
    short way: prepared, and handed to the transport adapter, as Session.send would, without what Session.send
    adds for such a call (the cookie jar, hooks, the next redirect worked out and never followed), and a form is
    encoded here: requests checks a form against runtime Protocols several times a call, about a fifth of a call's
    CPU on Python 3.11. The request sent, the answer and each error are the same.
    A network's cookies are then never kept from one grant's revocation to the next person's.
    """

    def __init__(self, settings: ProxySettings) -> None:
        super().__init__()
        self.trust_env = False
        self.settings = settings

    def request(self, method, url, params=None, data=None, headers=None, cookies=None, files=None, auth=None,
                timeout=None, allow_redirects=True, proxies=None, hooks=None, stream=None, verify=None, cert=None,
                json=None) -> requests.Response:
        if (allow_redirects or cookies or files or hooks or stream
                or self.cookies or self.auth or self.params or self.hooks.get("response")):
            return super().request(method, url, params=params, data=data, headers=headers, cookies=cookies,
                                   files=files, auth=auth, timeout=timeout, allow_redirects=allow_redirects,
                                   proxies=proxies, hooks=hooks, stream=stream, verify=verify, cert=cert, json=json)
        merged = CaseInsensitiveDict(merge_setting(headers, self.headers, CaseInsensitiveDict))  # never the session's
        if isinstance(data, dict):  # a form (RFC 7009's), encoded as requests would, without its Protocol checks
            data = urlencode([(k, v) for k, values in data.items()
                              for v in (values if isinstance(values, (list, tuple)) else [values]) if v is not None])
            merged.setdefault("Content-Type", FORM)
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method.upper(), url=url, headers=merged, data=data or None, params=params or "",
                         auth=auth, json=json)
        target = prepared.url or url
        settings = self.merge_environment_settings(target, proxies or {}, False, verify, cert)
        response = self.get_adapter(target).send(prepared, stream=False, timeout=timeout, cert=settings["cert"],
                                                 verify=settings["verify"], proxies=settings["proxies"])
        response.content  # noqa: B018 (read now, as requests reads a call that does not stream)
        return response

    def merge_environment_settings(self, url, proxies, stream, verify, cert) -> dict[str, Any]:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        merged["proxies"] = {**self.settings.for_url(url), **merged["proxies"]}  # a call's own proxies win
        if self.settings.ca_bundle and (verify is True or verify is None) and merged["verify"] is True:
            merged["verify"] = self.settings.ca_bundle
        return merged
