"""Flask extensions, created unbound here and bound to an app inside create_app."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from app.db import Database
from app.errors import OwnstoryApi


class OwnstoryLoginManager(LoginManager):
    """Session protection guards cookies; the API takes no cookies, so it never applies there.

    Without this, a caller holding any session cookie (a CSRF token from a form page) would have
    its bearer token ignored and the request treated as a hijacked session.
    """

    def _session_protection_failed(self) -> bool:
        from app.auth import is_api_request

        if is_api_request():
            return False
        return super()._session_protection_failed()


db = Database()
login_manager = OwnstoryLoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[], storage_uri="memory://")
api = OwnstoryApi()
