"""Consent state changes and reads: nothing by default, giving, withdrawing, and reconsent."""
import dataclasses
import datetime as dt

import pytest
from sqlalchemy import func, select

from consent import ledger, service
from consent.models import ConsentEvent
from consent.purposes import Purposes

NOW = dt.datetime(2026, 11, 25, 19, 0, tzinfo=dt.UTC)


@pytest.fixture
def purposes(app):
    return app.extensions["purposes"]


@pytest.fixture
def person(make_person, connect):
    user = make_person()
    user.account = connect(user)
    return user


def bumped(purposes, key, changes="What changed."):
    return Purposes({k: dataclasses.replace(p, version=p.version + 1, changes=changes) if k == key else p
                     for k, p in purposes.items()})


def events(session, subject_id):
    return session.scalar(select(func.count()).select_from(ConsentEvent).where(ConsentEvent.subject_id == subject_id))


def check_one(session, purposes, account, purpose="scoring", **kwargs):
    [result] = service.check(session, [{"network": "demo", "account": account, "purpose": purpose}],
                             purposes, {"demo"}, **kwargs)
    return result


def test_connecting_a_network_is_not_consent_to_anything(session, purposes, person):
    assert [g.network for g in service.grants_of(session, person.id)] == ["demo"]
    assert service.consent_overview(session, person.id, purposes) == []
    assert events(session, person.id) == 0
    for key in purposes:
        assert check_one(session, purposes, person.account, key) == {"allowed": False, "reason": "no_consent"}


def test_giving_consent_at_the_current_version(session, purposes, person):
    changes = service.set_consents(session, person.id, {("demo", "scoring")}, purposes, {"demo"}, NOW)
    session.commit()
    assert changes == [service.Change("demo", "scoring", "grant", purposes["scoring"].version)]
    assert check_one(session, purposes, person.account) == {"allowed": True, "reason": "granted"}
    assert check_one(session, purposes, person.account, "research")["reason"] == "no_consent"
    [row] = service.consent_overview(session, person.id, purposes)
    assert (row.network, row.purpose, row.title, row.status, row.since) == (
        "demo", "scoring", purposes["scoring"].title, "granted", NOW)


def test_saving_the_same_choices_again_writes_nothing(session, purposes, person):
    wanted = {("demo", "scoring"), ("demo", "research")}
    service.set_consents(session, person.id, wanted, purposes, {"demo"}, NOW)
    session.commit()
    assert service.set_consents(session, person.id, wanted, purposes, {"demo"}, NOW) == []
    assert events(session, person.id) == 2


def test_withdrawing(session, purposes, person):
    service.set_consents(session, person.id, {("demo", "scoring"), ("demo", "research")}, purposes, {"demo"}, NOW)
    changes = service.set_consents(session, person.id, {("demo", "research")}, purposes, {"demo"}, NOW)
    session.commit()
    assert [(c.purpose, c.action) for c in changes] == [("scoring", "withdraw")]
    assert check_one(session, purposes, person.account) == {"allowed": False, "reason": "withdrawn"}
    assert check_one(session, purposes, person.account, "research")["reason"] == "granted"
    assert ledger.verify(session) == []


def test_a_version_bump_asks_for_consent_again(session, purposes, person):
    service.set_consents(session, person.id, {("demo", "scoring")}, purposes, {"demo"}, NOW)
    session.commit()
    newer = bumped(purposes, "scoring", "The score now counts followers.")
    assert check_one(session, newer, person.account) == {"allowed": False, "reason": "reconsent_required"}
    [row] = service.consent_overview(session, person.id, newer)
    assert (row.status, row.version, row.current_version, row.changes) == (
        "reconsent_required", purposes["scoring"].version, newer["scoring"].version, "The score now counts followers.")

    # Leaving the changed purpose unticked is not a withdrawal: nothing is written.
    session.commit()  # as the form does: the reads end, and the save takes the write lock first
    assert service.set_consents(session, person.id, set(), newer, {"demo"}, NOW) == []
    assert check_one(session, newer, person.account)["reason"] == "reconsent_required"

    session.commit()
    changes = service.set_consents(session, person.id, {("demo", "scoring")}, newer, {"demo"}, NOW)
    session.commit()
    assert changes == [service.Change("demo", "scoring", "grant", newer["scoring"].version)]
    assert check_one(session, newer, person.account)["reason"] == "granted"
    assert service.consent_overview(session, person.id, newer)[0].changes == ""


def test_a_network_not_connected_or_an_unknown_purpose_changes_nothing(session, purposes, person):
    for pair in [("elsewhere", "scoring"), ("demo", "astrology")]:
        with pytest.raises(service.UnknownConsent):
            service.set_consents(session, person.id, {("demo", "scoring"), pair}, purposes, {"demo"}, NOW)
    assert events(session, person.id) == 0


def test_withdraw_all_withdraws_every_consent_at_any_version(session, purposes, make_person, connect):
    user = make_person()
    connect(user)
    session.commit()  # the connect's reads end: the save takes the write lock first
    service.set_consents(session, user.id, {("demo", "scoring"), ("demo", "research")}, purposes, {"demo"}, NOW)
    newer = bumped(purposes, "scoring")  # scoring stays granted at the old version
    # A second network, as if connected and since taken out of the catalogue.
    service.set_consents(session, user.id, {("other", "research")}, newer, {"other"}, NOW)
    session.commit()

    assert [(c.network, c.purpose) for c in service.withdraw_all(session, user.id, NOW, "optout", "other")] == [
        ("other", "research")]
    changes = service.withdraw_all(session, user.id, NOW, "optout")
    session.commit()
    assert sorted((c.purpose, c.version) for c in changes) == [
        ("research", purposes["research"].version), ("scoring", purposes["scoring"].version)]
    assert {r.status for r in service.consent_overview(session, user.id, newer)} == {"withdrawn"}
    session.commit()
    assert service.withdraw_all(session, user.id, NOW, "optout") == []
    assert ledger.verify(session) == []


def test_checks_by_subject_and_unknown_people(session, purposes, person, make_person):
    service.set_consents(session, person.id, {("demo", "scoring")}, purposes, {"demo"}, NOW)
    session.commit()
    operator = make_person(role="operator")
    checks = [{"network": "demo", "subject": person.id, "purpose": "scoring"},
              {"network": "demo", "subject": "no-such-person", "purpose": "scoring"},
              {"network": "demo", "subject": operator.id, "purpose": "scoring"},
              {"network": "demo", "account": "no-such-account", "purpose": "scoring"}]
    assert [r["reason"] for r in service.check(session, checks, purposes, {"demo"})] == [
        "granted", "unknown", "unknown", "unknown"]


def test_an_unknown_network_or_purpose_names_the_check(session, purposes):
    good = {"network": "demo", "account": "1", "purpose": "scoring"}
    with pytest.raises(service.InvalidCheck) as caught:
        service.check(session, [good, {**good, "purpose": "astrology"}], purposes, {"demo"})
    assert (caught.value.index, caught.value.field) == (1, "purpose")
    with pytest.raises(service.InvalidCheck) as caught:
        service.check(session, [{**good, "network": "myspace"}], purposes, {"demo"})
    assert (caught.value.index, caught.value.field) == (0, "network")


def test_the_opt_out_seam_is_asked_once_about_each_identity_named_and_wins(session, purposes, person):
    service.set_consents(session, person.id, {("demo", "scoring")}, purposes, {"demo"}, NOW)
    session.commit()
    asked = []

    def suppressed(_session, identities):
        asked.append(identities)
        return {("subject", "demo", person.id): "opted_out", ("account", "demo", "gone-account"): "opted_out",
                ("account", "demo", "left-here"): "withdrawn"}

    checks = [{"network": "demo", "subject": person.id, "purpose": "scoring"},
              {"network": "demo", "account": "gone-account", "purpose": "scoring"},
              {"network": "demo", "account": "left-here", "purpose": "scoring"},
              {"network": "demo", "account": "other", "purpose": "scoring"}]
    results = service.check(session, checks, purposes, {"demo"}, suppressed=suppressed)
    # The person's own consent is granted, and the list outranks it.
    assert [r["reason"] for r in results] == ["opted_out", "opted_out", "withdrawn", "unknown"]
    assert not any(r["allowed"] for r in results)
    assert asked == [{("subject", "demo", person.id), ("account", "demo", "gone-account"),
                      ("account", "demo", "left-here"), ("account", "demo", "other")}]


def test_a_batch_of_checks_costs_two_queries(app, session, purposes, person):
    from sqlalchemy import event


    checks = [{"network": "demo", "purpose": "scoring", "account": f"acct-{i}"} for i in range(500)]
    checks += [{"network": "demo", "purpose": "research", "subject": f"subject-{i}"} for i in range(499)]
    checks += [{"network": "demo", "purpose": "scoring", "account": person.account}]
    statements = []
    event.listen(session.get_bind(), "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement))
    results = service.check(session, checks, purposes, {"demo"})
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # accounts with their consent states, subjects with theirs: each list sent as one parameter
    assert len(selects) == 2, selects
    assert results[-1]["reason"] == "no_consent" and results[0]["reason"] == "unknown"
