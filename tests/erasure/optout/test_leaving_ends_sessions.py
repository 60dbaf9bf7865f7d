"""Leaving everything ends every session of the account at once: a cookie copied before opens nothing."""
from tests.erasure.helpers_optout import submit_optout
from tests.helpers_sessions import copy_of_cookie


def test_a_copy_of_the_cookie_opens_nothing_once_the_person_has_left(app, client, make_person, login, csrf_post):
    login(client, make_person())
    copy = copy_of_cookie(app, client)
    assert copy.get("/me").status_code == 200
    submit_optout(client, csrf_post, "all")
    # Before the worker has even started: the account is closing, and nothing of it opens any more.
    for path in ("/me", "/export", "/consents", "/optout"):
        response = copy.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path
