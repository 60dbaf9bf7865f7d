"""Signing up, in and out, as a person does it through the pages."""
import re

import pytest
from sqlalchemy import select

from app.models import User
from tests.conftest import PASSWORD, csrf_token_from
from tests.erasure.helpers_optout import outbox
from tests.helpers_sessions import browser_at, copy_of_cookie


def test_signup_lands_on_my_data(client, csrf_post, session):
    response = csrf_post(client, "/signup", {"email": "Liz@Example.org ", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/me"
    page = client.get("/me").get_data(as_text=True)
    assert "My data" in page and "Opt out" in page
    user = session.scalar(select(User).where(User.email == "liz@example.org"))
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_signup_with_a_taken_email_says_so_and_tells_the_owner(app, client, csrf_post, make_person):
    person = make_person()
    response = csrf_post(client, "/signup", {"email": person.email.upper(), "password": "another password"})
    assert response.status_code == 400
    assert "already has an account" in response.get_data(as_text=True)
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    [mail] = outbox(app)
    assert mail["To"] == person.email and "someone tried to sign up" in mail["Subject"].lower()
    assert "/login" in mail.get_content() and "another password" not in mail.get_content()


def test_signup_answers_a_staff_address_as_any_taken_one(app, csrf_post, make_person):
    """Nothing tells an operator's or auditor's address from a person's."""
    answers = {}
    for role in ("person", "operator", "auditor"):
        taken = make_person(role=role)
        response = csrf_post(app.test_client(), "/signup", {"email": taken.email, "password": PASSWORD})
        page = re.sub(r'value="[^"]*"', 'value=""', response.get_data(as_text=True))
        answers[role] = (response.status_code, page.replace(taken.email, "ADDRESS"))
    assert answers["operator"] == answers["auditor"] == answers["person"]
    assert len(outbox(app)) == 3  # each owner is told


def test_signups_with_one_address_are_limited_alike_whether_or_not_it_has_an_account(make_app, csrf_post,
                                                                                      make_person):
    app = make_app({"RATELIMIT_ENABLED": True})
    taken = make_person()
    codes = {}
    for email in (taken.email, "free@example.org"):
        # Each from a browser of its own: a new address's first sign-up signs that browser in.
        codes[email] = [csrf_post(app.test_client(), "/signup", {"email": email, "password": PASSWORD}).status_code
                        for _ in range(4)]
    assert codes[taken.email] == [400, 400, 400, 429]
    assert codes["free@example.org"] == [302, 400, 400, 429]
    assert len([m for m in outbox(app) if m["To"] == taken.email]) == 3
    # A form with a mistake in it costs nothing.
    browser = browser_at(app, "10.3.0.1")
    mistakes = [csrf_post(browser, "/signup", {"email": "typo@example.org", "password": "short"}).status_code
                for _ in range(4)]
    assert mistakes == [400] * 4


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
    # A line break would end the Location header: urlsplit reads past it, the redirect must not.
    ("/consents\r\nSet-Cookie: planted=1", "/me"),
    ("/consents\n", "/me"),
    ("/\t/evil.example", "/me"),
    ("/consents?tab=1#top", "/consents?tab=1#top"),
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


def test_a_copy_of_the_cookie_opens_nothing_after_signing_out(app, client, login, make_person, csrf_post):
    login(client, make_person())
    copy = copy_of_cookie(app, client)
    assert copy.get("/me").status_code == 200  # the copy works while the session lasts
    csrf_post(client, "/logout", page="/me")
    for path in ("/me", "/export", "/consents"):
        response = copy.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path


def test_signing_out_ends_every_session_of_the_account_and_a_new_sign_in_works(app, login, make_person,
                                                                               csrf_post):
    person = make_person()
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, person)
    login(phone, person)
    csrf_post(laptop, "/logout", page="/me")
    assert phone.get("/me").status_code == 302
    login(laptop, person)
    assert laptop.get("/me").status_code == 200


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


def _timeless(answer) -> str:
    return re.sub(r"<time[^>]*>.*?</time>|in about \d+\s+minutes?", "", answer.get_data(as_text=True), flags=re.S)


def test_signin_to_one_account_is_limited_from_every_address_alike(make_app, csrf_post, make_person):
    """Ten wrong passwords from ten addresses, and the account takes no more guesses for a while: not even the
    right password. An address without an account is limited, and answered, just the same."""
    app = make_app({"RATELIMIT_ENABLED": True})
    person = make_person()
    answers = {}
    for n, email in enumerate((person.email, "nobody@example.org")):
        for i in range(10):
            client = browser_at(app, f"10.{n}.0.{i + 1}")
            assert csrf_post(client, "/login", {"email": email, "password": "wrong password!"}).status_code == 400
        client = browser_at(app, f"10.{n}.1.1")
        answers[email] = csrf_post(client, "/login", {"email": email, "password": PASSWORD})
    limited = answers[person.email]
    assert limited.status_code == answers["nobody@example.org"].status_code == 429
    # The same page word for word, but for the moment it names (each limit's window began at its own first try).
    assert _timeless(limited) == _timeless(answers["nobody@example.org"])
    assert "Too many failed sign-ins for this email address" in limited.get_data(as_text=True)
    # Another account, from the same addresses, is not held back.
    other = make_person()
    client = browser_at(app, "10.0.1.1")
    assert csrf_post(client, "/login", {"email": other.email, "password": PASSWORD}).status_code == 302


def test_signing_in_with_the_right_password_does_not_use_up_the_accounts_limit(make_app, csrf_post, make_person):
    app = make_app({"RATELIMIT_ENABLED": True})
    person = make_person()
    for i in range(12):
        client = browser_at(app, f"10.2.0.{i + 1}")
        assert csrf_post(client, "/login", {"email": person.email, "password": PASSWORD}).status_code == 302


def test_signin_is_rate_limited(make_app, csrf_post):
    app = make_app({"RATELIMIT_ENABLED": True})
    client = app.test_client()
    codes = [csrf_post(client, "/login", {"email": "x@example.org", "password": "nope nope nope"}).status_code
             for _ in range(12)]
    assert codes[:10] == [400] * 10
    assert codes[-1] == 429
