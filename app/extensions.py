"""Flask extensions, created unbound here and bound to an app inside create_app."""
from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_smorest import Api

from app import openapi
from app.csrf import OwnstoryCSRFProtect
from app.db import Database
from app.errors import handle_http_exception

BEARER_ONLY_PATHS = ("/metrics",)  # outside /api/ but, like it, for programs with a bearer token only


def is_api_request() -> bool:
    return request.path.startswith("/api/") or request.path in BEARER_ONLY_PATHS


class OwnstoryLoginManager(LoginManager):
    """Session protection guards cookies; the API takes no cookies, so it never applies there.

    Without this, a caller holding any session cookie (a CSRF token from a form page) would have
    its bearer token ignored and the request treated as a hijacked session.
    """

    def _session_protection_failed(self) -> bool:
        if is_api_request():
            return False
        return super()._session_protection_failed()


class OwnstoryApi(Api):
    """flask-smorest's Api, with errors answered in Ownstory's shape on every path, and documented so."""

    DEFAULT_ERROR_RESPONSE_NAME = None  # no catch-all "default": each operation lists its errors (app.openapi)
    ERROR_SCHEMA = openapi.ErrorSchema

    def init_app(self, app, *, spec_kwargs=None):
        super().init_app(app, spec_kwargs={"extra_plugins": [openapi.ErrorsPlugin()],
                                           "info": {"description": openapi.DESCRIPTION}, **(spec_kwargs or {})})
        openapi.register_components(self.spec)

    def handle_http_exception(self, error):
        return handle_http_exception(error)


db = Database()
login_manager = OwnstoryLoginManager()
csrf = OwnstoryCSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])  # storage: app.limits, from the settings
api = OwnstoryApi()
