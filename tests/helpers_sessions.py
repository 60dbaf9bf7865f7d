"""Browsers for session tests: one on a client address of its own, and one holding a copy of another's cookie."""


def browser_at(app, address: str):
    """A browser on a client address of its own."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def copy_of_cookie(app, client):
    """Another browser holding a copy of this one's session cookie, as someone who copied it would."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    thief = app.test_client()
    thief.set_cookie(cookie.key, cookie.value, domain=cookie.domain or "localhost")
    return thief
