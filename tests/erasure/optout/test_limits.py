"""Leaving is never refused for sharing an address: opt-outs are limited per account, and a refusal says so kindly."""
OFFICE = "198.51.100.7"  # one public address for a whole office, university or proxy


def signed_in_earlier(make_app, login, people) -> list[str]:
    """Session cookies of people who signed in from OFFICE earlier in the hour.

    Signing in has limits of its own per address, which these tests are not about: they sign in on an
    app built without limits, before the limited app exists (Flask-Limiter's limiter is one per process,
    and the last app built turns it on or off for every app).
    """
    front = make_app()
    cookies = []
    for person in people:
        client = front.test_client()
        client.environ_base["REMOTE_ADDR"] = OFFICE
        login(client, person)
        cookies.append(client.get_cookie("ownstory_session").value)
    return cookies


def at_office(app, cookie: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = OFFICE
    client.set_cookie("ownstory_session", cookie)
    return client


def test_fifty_people_on_one_address_all_leave_within_the_hour(make_app, make_person, login, csrf_post):
    cookies = signed_in_earlier(make_app, login, [make_person() for _ in range(50)])
    limited = make_app({"RATELIMIT_ENABLED": True})
    answers = [csrf_post(at_office(limited, cookie), "/optout", {"scope": "all", "public_status": "no"})
               for cookie in cookies]
    refused = [(n + 1, answer.status_code) for n, answer in enumerate(answers) if answer.status_code != 302]
    assert refused == [], "(person, answer) of those who could not leave"
    assert all(answer.headers["Location"].startswith("/optout/") for answer in answers)


def test_a_refused_optout_says_nothing_was_lost_and_when_it_works(make_app, make_person, login, csrf_post):
    mine, others = signed_in_earlier(make_app, login, [make_person(), make_person()])
    limited = make_app({"RATELIMIT_ENABLED": True})
    client = at_office(limited, mine)
    # A form sent again and again (here: with a scope that does not exist) counts against the account.
    codes = [csrf_post(client, "/optout", {"scope": "nowhere"}).status_code for _ in range(31)]
    assert codes[:30] == [400] * 30 and codes[30] == 429
    page = csrf_post(client, "/optout", {"scope": "all"})
    text = page.get_data(as_text=True)
    assert page.status_code == 429
    assert "Too Many Requests" not in text
    assert "Nothing was lost" in text and "It will work again from" in text
    assert "UTC" in text and int(page.headers["Retry-After"]) > 0
    # Another person on the same address is not held back by it.
    assert csrf_post(at_office(limited, others), "/optout", {"scope": "all", "public_status": "no"}).status_code == 302
