"""Security headers on every response, set here and nowhere else (Demo Social's pages under /demo too).

A header a view already set is kept: the pages whose address is a capability (status links, the
one-time /forget link) send `Referrer-Policy: no-referrer`, stricter than the default here.
"""
from __future__ import annotations

from flask import Flask, Response

# Pages use only their own stylesheet and scripts (app/static/): nothing inline, nothing from elsewhere.
# Every page works without its script; the status page's only makes it update in place.
# No form-action: connecting a network posts a form that is redirected to the network's own site.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",  # no page of ours inside another site's frame: no clickjacking of "Opt out now"
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
    # Our own pages still see where a form came from (Flask-WTF checks it over HTTPS); others see the origin only.
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def secure(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    app.after_request(secure)
