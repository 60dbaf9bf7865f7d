"""`flask consent verify-ledger` and `flask keys rotate-tokens`."""
import datetime as dt

from sqlalchemy import text

from consent import service

NOW = dt.datetime(2026, 11, 25, 19, 0, tzinfo=dt.UTC)


def consent_to_everything(app, user):
    from app.extensions import db

    purposes = app.extensions["purposes"]
    with app.app_context():
        service.set_consents(db.session, user.id, {("demo", key) for key in purposes}, purposes, {"demo"}, NOW)
        db.session.commit()
    return len(purposes)


def test_an_intact_ledger(app, make_person, connect):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["consent", "verify-ledger"]).output == "ledger intact: 0 events, 0 people\n"
    people = [make_person() for _ in range(2)]
    for user in people:
        connect(user)
    count = sum(consent_to_everything(app, user) for user in people)
    result = runner.invoke(args=["consent", "verify-ledger"])
    assert (result.exit_code, result.output) == (0, f"ledger intact: {count} events, 2 people\n")
    result = runner.invoke(args=["consent", "verify-ledger", "--subject", people[0].id])
    assert result.output == f"ledger intact: {count // 2} events, 1 people\n"


def test_a_broken_ledger_names_the_person_and_the_entry_but_no_email(app, make_person, connect):
    from app.extensions import db

    user = make_person()
    connect(user)
    consent_to_everything(app, user)
    with app.app_context():
        db.session.execute(text("UPDATE consent_events SET action = 'withdraw' WHERE seq = 2"))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["consent", "verify-ledger"])
    assert result.exit_code == 1
    assert f"subject {user.id}: hash mismatch at seq 2" in result.output
    assert user.email not in result.output and "@" not in result.output


def test_rotate_tokens_reports_how_many_grants(app, make_person, connect):
    for _ in range(3):
        connect(make_person())
    result = app.test_cli_runner().invoke(args=["keys", "rotate-tokens"])
    assert (result.exit_code, result.output) == (0, "re-encrypted 3 grants' tokens\n")
