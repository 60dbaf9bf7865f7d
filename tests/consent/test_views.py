"""The /consents page: giving, withdrawing and renewing consent with a form, and what it refuses."""
import pytest
from sqlalchemy import select

from consent.models import ConsentEvent, ConsentState
from tests.consent.conftest import PURPOSES_V1, PURPOSES_V2


@pytest.fixture
def app(make_app, write_purposes):
    return make_app(purposes=write_purposes(PURPOSES_V1))


@pytest.fixture
def person(client, make_person, connect, login):
    user = make_person()
    connect(user)
    login(client, user)
    return user


def states(app, user):
    from app.extensions import db

    with app.app_context():
        rows = db.session.scalars(select(ConsentState).where(ConsentState.subject_id == user.id))
        return {(s.network, s.purpose): (s.status, s.version) for s in rows}


def event_count(app):
    from app.extensions import db

    with app.app_context():
        return len(db.session.scalars(select(ConsentEvent.id)).all())


def checkbox(html, name):
    """The checkbox input with this name, as one line of HTML."""
    start = html.index(f'name="{name}"')
    return html[html.rindex("<input", 0, start):html.index(">", start) + 1]


def test_the_page_is_for_signed_in_people(app, client, make_person, login):
    assert client.get("/consents").status_code == 302
    staff = app.test_client()
    login(staff, make_person(role="operator"))
    assert staff.get("/consents").status_code == 403


def test_without_a_network_the_page_points_to_my_data(client, make_person, login):
    login(client, make_person())
    html = client.get("/consents").get_data(as_text=True)
    assert "You have not connected any network yet" in html
    assert 'href="/me"' in html
    assert 'type="checkbox"' not in html


def test_every_purpose_is_offered_unticked_with_its_text(client, person):
    html = client.get("/consents").get_data(as_text=True)
    assert "<legend>Demo Social</legend>" in html
    for name, title in [("consent:demo:scoring", "Influence score"), ("consent:demo:research", "Aggregate research")]:
        box = checkbox(html, name)
        assert "checked" not in box
        assert f'<label for="{name.replace(":", "-")}">{title}' in html
    assert "We compute a score from your public posts." in html


def test_consenting_and_withdrawing(app, client, person, csrf_post):
    response = csrf_post(client, "/consents", {"consent:demo:scoring": "yes"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/consents")
    assert states(app, person) == {("demo", "scoring"): ("granted", 1)}
    html = client.get("/consents").get_data(as_text=True)
    assert "Saved: you gave 1 consent." in html
    assert "checked" in checkbox(html, "consent:demo:scoring")
    assert "checked" not in checkbox(html, "consent:demo:research")

    csrf_post(client, "/consents", {})
    assert states(app, person) == {("demo", "scoring"): ("withdrawn", 1)}
    html = client.get("/consents").get_data(as_text=True)
    assert "Saved: you withdrew 1 consent." in html
    assert "checked" not in checkbox(html, "consent:demo:scoring")


def test_saving_unchanged_choices_writes_nothing(app, client, person, csrf_post):
    csrf_post(client, "/consents", {"consent:demo:scoring": "yes"})
    before = event_count(app)
    response = csrf_post(client, "/consents", {"consent:demo:scoring": "yes"}, follow_redirects=True)
    assert "Nothing changed" in response.get_data(as_text=True)
    assert event_count(app) == before


def test_a_new_version_is_shown_as_changed_until_ticked_again(make_app, write_purposes, client, person, csrf_post,
                                                               login):
    csrf_post(client, "/consents", {"consent:demo:scoring": "yes"})
    newer = make_app(purposes=write_purposes(PURPOSES_V2))  # the same database, scoring at version 2
    browser = newer.test_client()
    login(browser, person)
    html = browser.get("/consents").get_data(as_text=True)
    assert "Changed — please review" in html
    assert "The score now also counts your followers." in html
    assert "checked" not in checkbox(html, "consent:demo:scoring")

    csrf_post(browser, "/consents", {"consent:demo:scoring": "yes"})
    assert states(newer, person) == {("demo", "scoring"): ("granted", 2)}
    html = browser.get("/consents").get_data(as_text=True)
    assert "Changed — please review" not in html
    assert "checked" in checkbox(html, "consent:demo:scoring")


def test_a_post_without_the_csrf_token_is_refused(app, client, person):
    response = client.post("/consents", data={"consent:demo:scoring": "yes"})
    assert response.status_code == 400
    assert states(app, person) == {}


@pytest.mark.parametrize("name", ["consent:elsewhere:scoring", "consent:demo:astrology", "consent:demo"])
def test_a_box_we_did_not_offer_refuses_the_whole_form(app, client, person, csrf_post, name):
    response = csrf_post(client, "/consents", {"consent:demo:scoring": "yes", name: "yes"})
    assert response.status_code == 400
    assert "Nothing was changed" in response.get_data(as_text=True)
    assert states(app, person) == {}


def test_my_data_shows_what_the_registered_counter_counts(app, client, make_person, login):
    from types import SimpleNamespace

    from consent.views import register_held_counter

    asked = []

    def count(user, grants):
        asked.append((user.id, list(grants)))
        return [SimpleNamespace(store="archive", category="letters", rows=7),
                SimpleNamespace(store="archive", category="photos", rows=None)]

    register_held_counter(app, count)
    person = make_person()
    login(client, person)
    html = client.get("/me").get_data(as_text=True)
    assert "<th scope=\"row\">Letters</th>" in html and "<td>7 letters</td>" in html
    assert "could not be counted just now" in html
    assert asked == [(person.id, [])]
