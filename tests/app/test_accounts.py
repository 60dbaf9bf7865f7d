"""Signing up, in and out, as a person does it through the pages."""
import pytest
from sqlalchemy import select

from app.models import User
from tests.conftest import PASSWORD, csrf_token_from


def test_signup_lands_on_my_data(client, csrf_post, session):
    response = csrf_post(client, "/signup", {"email": "Liz@Example.org ", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/me"
    page = client.get("/me").get_data(as_text=True)
    assert "My data" in page and "Opt out" in page
    user = session.scalar(select(User).where(User.email == "liz@example.org"))
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_signup_with_a_taken_email_says_so(client, csrf_post, make_person):
    person = make_person()
    response = csrf_post(client, "/signup", {"email": person.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "An account with this email exists" in response.get_data(as_text=True)


@pytest.mark.parametrize("email, password, message", [
    ("not-an-email", PASSWORD, "Invalid email address"),
    ("a@example.org", "short", "at least 10 characters"),
    ("", "", "This field is required"),
])
def test_signup_with_bad_input_explains(client, csrf_post, email, password, message):
    response = csrf_post(client, "/signup", {"email": email, "password": password})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_login_gives_the_same_answer_for_unknown_email_and_wrong_password(client, csrf_post, make_person):
    person = make_person()
    wrong = csrf_post(client, "/login", {"email": person.email, "password": "wrong password!"})
    unknown = csrf_post(client, "/login", {"email": "nobody@example.org", "password": "wrong password!"})
    assert wrong.status_code == unknown.status_code == 400
    assert "do not match an account" in wrong.get_data(as_text=True)
    assert "do not match an account" in unknown.get_data(as_text=True)


def test_login_starts_a_new_session(client, csrf_post, make_person):
    person = make_person()
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    csrf_post(client, "/login", {"email": person.email, "password": PASSWORD})
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"] == person.id


def test_session_cookie_is_httponly_and_samesite(client, login, make_person):
    response = login(client, make_person())
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("target, expected", [
    ("/consents", "/consents"),
    ("https://evil.example/", "/me"),
    ("//evil.example/", "/me"),
    ("/\\evil.example", "/me"),
    ("javascript:alert(1)", "/me"),
])
def test_next_cannot_become_an_open_redirect(client, make_person, target, expected):
    person = make_person()
    page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
    response = client.post("/login", data={"email": person.email, "password": PASSWORD, "next": target,
                                           "csrf_token": csrf_token_from(page)})
    assert response.headers["Location"] == expected


def test_logout_is_a_post_and_ends_the_session(client, login, make_person, csrf_post):
    login(client, make_person())
    assert client.get("/logout").status_code == 405
    response = csrf_post(client, "/logout", page="/me")
    assert response.status_code == 302
    assert client.get("/me").status_code == 302  # back to sign-in


def test_a_form_post_without_csrf_token_is_refused(client, make_person):
    person = make_person()
    response = client.post("/login", data={"email": person.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    with client.session_transaction() as sess:
        assert "_user_id" not in sess


def test_pages_need_sign_in(client):
    response = client.get("/me")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_signin_is_rate_limited(make_app, csrf_post):
    app = make_app({"RATELIMIT_ENABLED": True})
    client = app.test_client()
    codes = [csrf_post(client, "/login", {"email": "x@example.org", "password": "nope nope nope"}).status_code
             for _ in range(12)]
    assert codes[:10] == [400] * 10
    assert codes[-1] == 429
