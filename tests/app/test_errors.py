"""Error pages: whatever went wrong in the database, the person sees Ownstory's page, never a bare server error."""
from app.extensions import db
from app.models import User


def test_a_failed_write_still_answers_with_our_page_for_a_signed_in_person(make_app, make_person, login):
    app = make_app()
    taken = make_person()

    @app.post("/test-only/failing-write")
    def failing_write():
        # A flush that fails leaves the session unusable until it is rolled back; the error page then
        # loads the signed-in person from it.
        db.session.add(User(email=taken.email, password_hash="!", role="person"))
        db.session.flush()  # the address is taken: IntegrityError
        return "never"

    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    client = app.test_client()
    login(client, make_person())
    app.testing = False  # as served: the error is handled, not raised into the test
    response = client.post("/test-only/failing-write")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong on our side. Nothing was changed." in page
    assert "Opt out" in page  # the page of a signed-in person, with its header
