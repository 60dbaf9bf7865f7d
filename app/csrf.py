"""CSRF: Flask-WTF's check, which also works on pages that send no Referer.

Over HTTPS, Flask-WTF also wants a Referer from our own origin. The pages whose address is a
capability (a status link, the one-time /forget link, a receipt) send `Referrer-Policy: no-referrer`,
so a form posted from them carries none, and was refused as soon as Ownstory saw HTTPS (served
behind OWNSTORY_TRUSTED_PROXIES, or with TLS of its own). For such a post the browser's own
`Sec-Fetch-Site: same-origin`, which no page can set or forge, stands in for the Referer. The token
is checked as always; a post with a Referer is checked exactly as Flask-WTF does.
"""
from __future__ import annotations

import logging

from flask import current_app, g, request
from flask_wtf.csrf import CSRFProtect, validate_csrf
from wtforms import ValidationError

log = logging.getLogger(__name__)


class OwnstoryCSRFProtect(CSRFProtect):
    def protect(self, apply_exemptions: bool = False) -> None:
        if request.referrer or request.headers.get("Sec-Fetch-Site") != "same-origin":
            return super().protect(apply_exemptions)
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return None
        if request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return None
        try:
            validate_csrf(self._get_csrf_token())
        except ValidationError as exc:
            log.info(exc.args[0])
            self._error_response(exc.args[0])
        g.csrf_valid = True
        return None
