"""Revoking one grant at one network over HTTP, in the catalogue's styles, and when to try again."""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import requests
from authlib.integrations.requests_client.oauth2_session import OAuth2ClientAuth
from authlib.oauth2.client import OAuth2Client

from consent.networks import Network

KINDS = ("revoked", "already_invalid", "manual", "retry", "failed")
DONE = ("revoked", "already_invalid", "manual")  # the local tokens may be destroyed
TIMEOUT = (5, 10)  # seconds to connect, seconds to wait for an answer
RETRY_AFTER_CAP = 3600.0  # a network may not park a revocation for longer than an hour
RETRYABLE_STATUSES = (408, 425, 429)  # and every 5xx
GRAPH_TOKEN_INVALID = 190  # Graph API: the access token is invalid or expired
GRAPH_THROTTLED = (4, 17, 32, 613)  # Graph API rate limits: wait, do not call a human
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")  # an OAuth error code we may repeat; descriptions could echo input
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, repr=False)
class GrantTokens:
    """The decrypted tokens of one grant, in memory only for the length of a revocation."""

    access_token: str | None
    refresh_token: str | None
    account_id: str
    access_expires_at: datetime | None = None  # when the access token ends by itself, if the network said

    def __repr__(self) -> str:
        return (f"GrantTokens(access_token={_held(self.access_token)}, "
                f"refresh_token={_held(self.refresh_token)}, account_id={self.account_id!r})")


def _held(token: str | None) -> str:
    return "<set>" if token else "None"


@dataclass(frozen=True)
class Outcome:
    """What the network said. `error` is written here, never copied from an answer or exception,
    so it cannot carry a token, a secret or a body echoing one."""

    kind: str
    retry_after: float | None = None
    error: str | None = None
    note: str | None = None  # why a done revocation is done in another way than asked, for the receipt

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown outcome kind {self.kind!r}")

    @property
    def done(self) -> bool:
        return self.kind in DONE


def needs_live_access_token(network: Network) -> bool:
    """Whether the style signs its revocation with the user's access token (Meta's Graph API), so an
    expired one must be refreshed first. The RFC 7009 styles revoke the refresh token with client
    credentials; GitHub's takes the access token as data, expired or not."""
    return network.revocation.style == "meta"


def revoke(network: Network, tokens: GrantTokens, http: requests.Session, timeout=TIMEOUT,
           deadline: datetime | None = None) -> Outcome:
    """Revoke the grant at the network in its catalogue style. Network trouble becomes an Outcome,
    never an exception; only a confirmation the style defines counts as revoked.

    `deadline` is when the grant must have ended: an access token the network cannot revoke
    (unsupported_token_type) is let expire if it does so by then."""
    style = network.revocation.style
    if style == "none":
        return Outcome("manual")
    try:
        if style in ("rfc7009", "reddit"):
            return _STYLES[style](network, tokens, http, timeout, deadline=deadline)
        return _STYLES[style](network, tokens, http, timeout)
    except requests.Timeout:
        return Outcome("retry", error=f"timed out waiting for {network.name}")
    except requests.ConnectionError as exc:
        problem = "connection refused by" if _refused(exc) else "could not connect to"
        return Outcome("retry", error=f"{problem} {network.name}")
    except requests.RequestException:
        # e.g. a malformed URL in the catalogue: retrying will not fix it, a human must.
        return Outcome("failed", error=f"could not send the revocation request to {network.name}")


def _rfc7009(network: Network, tokens: GrantTokens, http: requests.Session, timeout,
             auth_method: str | None = None, confirmed: tuple[int, ...] = (200,),
             deadline: datetime | None = None) -> Outcome:
    client = _RevocationClient(
        http, client_id=network.client_id, client_secret=network.client_secret,
        revocation_endpoint_auth_method=auth_method or network.token_endpoint_auth,
    )
    # The refresh token first: revoking it ends the whole authorization (RFC 7009 2.1), so a
    # failure in between leaves no refresh token able to mint new access tokens.
    pending = [(t, hint) for t, hint in ((tokens.refresh_token, "refresh_token"),
                                         (tokens.access_token, "access_token")) if t]
    if not pending:
        return Outcome("failed", error=f"no token is stored to revoke at {network.name}")
    for token, hint in pending:
        response = client.revoke_token(network.revocation.url, token=token, token_type_hint=hint,
                                       timeout=timeout, allow_redirects=False)
        if response.status_code in confirmed:
            continue
        if hint == "access_token" and _unsupported_token_type(response):
            return _access_token_left_to_expire(network, tokens, deadline)
        return _classify(response, network)
    return Outcome("revoked")  # 200 also for a token already invalid (RFC 7009 2.2): it is gone either way


def _unsupported_token_type(response: requests.Response) -> bool:
    body = _json(response)
    return response.status_code == 400 and isinstance(body, dict) and body.get("error") == "unsupported_token_type"


def _access_token_left_to_expire(network: Network, tokens: GrantTokens, deadline: datetime | None) -> Outcome:
    """The network cannot revoke access tokens (RFC 7009 2.2.1; JWT access tokens, for one). Asking
    again will not change that: the grant has ended if its refresh token was revoked (just now, in
    the loop above), or if the access token expires by itself before the deadline."""
    if tokens.refresh_token:
        return Outcome("revoked", note=f"{network.name} cannot revoke access tokens; revoking the refresh "
                                       "token ended the grant")
    expires = tokens.access_expires_at
    if expires is not None and deadline is not None and expires <= deadline:
        return Outcome("revoked", note=f"{network.name} cannot revoke access tokens; the access token "
                                       f"expires by itself at {_iso(expires)}, within the deadline")
    return Outcome("failed", error=f"HTTP 400 from {network.name} (unsupported_token_type): it cannot revoke "
                                   "the access token, and no refresh token or expiry within the deadline ends it")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reddit(network: Network, tokens: GrantTokens, http: requests.Session, timeout,
            deadline: datetime | None = None) -> Outcome:
    # Reddit takes only HTTP Basic client auth, and documents 204 as its answer.
    return _rfc7009(network, tokens, http, timeout, auth_method="client_secret_basic", confirmed=(200, 204),
                    deadline=deadline)


def _github(network: Network, tokens: GrantTokens, http: requests.Session, timeout) -> Outcome:
    # Plain requests: this is GitHub's own API, not RFC 7009, so Authlib has no call for it.
    if not tokens.access_token:
        return Outcome("failed", error=f"no access token is stored to revoke at {network.name}")
    response = http.delete(network.revocation.url, json={"access_token": tokens.access_token},
                           auth=(network.client_id, network.client_secret), headers=GITHUB_HEADERS,
                           timeout=timeout, allow_redirects=False)
    if response.status_code == 204:
        return Outcome("revoked")
    if response.status_code in (404, 422):
        return Outcome("already_invalid")
    return _classify(response, network)


def _meta(network: Network, tokens: GrantTokens, http: requests.Session, timeout) -> Outcome:
    # Plain requests: the Graph API's permission deletion, signed by the user's token, not OAuth.
    if not tokens.access_token:
        return Outcome("failed", error=f"no access token is stored to revoke at {network.name}")
    # quote: an account id is data from the network, and must not be able to change the path.
    url = network.revocation.url.replace("{account_id}", quote(tokens.account_id, safe=""))
    # The Graph API documents access_token as a parameter; errors below never include the URL.
    response = http.delete(url, params={"access_token": tokens.access_token}, timeout=timeout,
                           allow_redirects=False)
    body = _json(response)
    if response.status_code == 200 and (body is True or body == {"success": True}):  # old and new Graph versions
        return Outcome("revoked")
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if code == GRAPH_TOKEN_INVALID:
        return Outcome("already_invalid")
    if code in GRAPH_THROTTLED:
        return Outcome("retry", retry_after=parse_retry_after(response.headers.get("Retry-After")),
                       error=f"HTTP {response.status_code} from {network.name} (Graph error {code}: rate limited)")
    return _classify(response, network)


_STYLES: dict[str, Callable[..., Outcome]] = {"rfc7009": _rfc7009, "reddit": _reddit, "github": _github, "meta": _meta}


class _RevocationClient(OAuth2Client):
    """Authlib's RFC 7009 request and client authentication, sent on the caller's requests.Session
    (an OAuth2Session would be a second session with a connection pool of its own per grant)."""

    client_auth_class = OAuth2ClientAuth  # the requests flavour: an AuthBase that signs the request
    SESSION_REQUEST_PARAMS = ["timeout", "allow_redirects"]  # the base class passes none of them on


def _classify(response: requests.Response, network: Network) -> Outcome:
    """Any answer that is not the style's confirmation: worth waiting for, or a human must look."""
    status = response.status_code
    error = f"HTTP {status} from {network.name}"
    body = _json(response)
    code = body.get("error") if isinstance(body, dict) else None
    if isinstance(code, str) and _ERROR_CODE.fullmatch(code):
        error += f" ({code})"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    # 403 with Retry-After is how GitHub answers a secondary rate limit.
    if status >= 500 or status in RETRYABLE_STATUSES or (status == 403 and retry_after is not None):
        return Outcome("retry", retry_after=retry_after, error=error)
    if 300 <= status < 400:
        error += ": a redirect is not a confirmation"
    elif status < 300:
        error += ": not the confirmation this network's revocation style gives"
    return Outcome("failed", retry_after=retry_after, error=error)


def _json(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None


def _refused(exc: BaseException) -> bool:
    """Whether the connection was refused, found in the chain requests and urllib3 wrap it in."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, ConnectionRefusedError):
            return True
        seen.add(id(current))
        reason = getattr(current, "reason", None)
        nested = [a for a in current.args if isinstance(a, BaseException)]
        stack += [current.__cause__, current.__context__, *nested,
                  reason if isinstance(reason, BaseException) else None]
    return False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date, RFC 9110 10.2.3),
    capped at RETRY_AFTER_CAP; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):
        return float(min(int(value), RETRY_AFTER_CAP))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP-dates are GMT
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def backoff(attempt: int, base: float = 2.0, cap: float = 600.0, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: a random wait below min(cap, base * 2**(attempt - 1)).
    The jitter spreads out many workers that all failed against one network at once."""
    exponent = min(max(attempt, 1) - 1, 64)  # 2.0**1024 overflows; the cap is reached long before
    return rng() * min(cap, base * 2.0**exponent)


def next_delay(outcome: Outcome, attempt: int, base: float = 2.0, cap: float = 600.0,
               rng: Callable[[], float] = random.random) -> float:
    """Seconds before attempt + 1. A network's Retry-After is the least we wait, never shortened."""
    return max(backoff(attempt, base, cap, rng), outcome.retry_after or 0.0)
