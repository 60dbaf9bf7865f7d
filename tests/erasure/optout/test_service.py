"""Submitting an opt-out (erasure/optout/service.py): in one transaction, consent stops, the person's identities
are suppressed, the grants leave and the steps are laid in phase order; what a second submission does."""
from __future__ import annotations

import base64

import pytest
from sqlalchemy import func, select

from app.db import utcnow, write_lock
from app.models import User
from consent.grants import store_grant
from consent.models import Grant
from consent.service import grants_of, set_consents
from consent.suppression import Identity, Suppression
from erasure.context import context_from_app
from erasure.models import ErasureStep, OptOutRequest
from erasure.optout import service
from erasure.optout.wording import REQUEST_STATES
from tests.conftest import networks_toml

SUPPRESSIONS = "/api/v1/suppressions/check"
CONSENT = "/api/v1/consent/check"


@pytest.fixture
def app(make_app, tmp_path, demo_network):
    """Two networks, so that leaving one of them has another to leave alone."""
    networks = tmp_path / "networks-two.toml"
    demo = networks_toml(demo_network.url)
    networks.write_text(demo + demo.replace("networks.demo", "networks.acme").replace("Demo Social", "Acme Social"))
    return make_app(networks=networks)


@pytest.fixture
def ctx(app):
    return context_from_app(app)


@pytest.fixture
def person(make_person, sessions, ctx):
    """Connected to both networks (Demo Social as account 1002, "omar"), consenting to scoring at both."""
    person = make_person()
    now = utcnow()
    with sessions() as db:
        for network, account in (("demo", "1002"), ("acme", "5002")):
            store_grant(db, ctx.vault, person.id, ctx.networks[network],
                        {"access_token": f"at-{account}", "refresh_token": f"rt-{account}"},
                        {"sub": account, "preferred_username": "omar"}, now)
        set_consents(db, person.id, {("demo", "scoring"), ("acme", "scoring")}, ctx.purposes, {"demo", "acme"}, now)
        db.commit()
    return person


def submit(sessions, ctx, user_id: str | None, scope: str = "all", *, commit: bool = True, **kwargs):
    """The service call the /optout form makes, with the person and their grants read afresh."""
    with sessions() as db:
        write_lock(db)  # as the form takes it: before the first read
        user = db.get(User, user_id) if user_id else None
        grants = grants_of(db, user_id) if user_id else []
        submitted = service.submit(db, ctx, user=user, grants=grants, scope=scope, now=utcnow(), **kwargs)
        if commit:
            db.commit()
        else:
            db.rollback()
        return submitted


def consent_reason(client, headers, network: str, account: str) -> str:
    """What the consent check tells a platform about scoring this account."""
    answer = client.post(CONSENT, headers=headers,
                         json={"checks": [{"network": network, "account": account, "purpose": "scoring"}]})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.json["results"][0]["reason"]


def suppression_check(client, headers, identities: list[dict]) -> list[dict]:
    answer = client.post(SUPPRESSIONS, headers=headers, json={"identities": identities})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.json["results"]


def identities_of(person, network: str = "demo", account: str = "1002") -> list[dict]:
    return [{"kind": "email", "value": person.email}, {"kind": "account", "network": network, "value": account},
            {"kind": "handle", "network": network, "value": "omar"}]


def steps_of(sessions, request_id: str) -> list[ErasureStep]:
    with sessions() as db:
        return list(db.scalars(select(ErasureStep).where(ErasureStep.request_id == request_id)
                               .order_by(ErasureStep.position)))


def counts(sessions) -> dict[str, int]:
    with sessions() as db:
        return {model.__name__: db.scalar(select(func.count()).select_from(model))
                for model in (OptOutRequest, ErasureStep, Grant)}


# --- one transaction ---------------------------------------------------------------------------------

def test_a_submission_its_caller_rolls_back_leaves_no_trace(client, sessions, ctx, person, service_headers):
    before = counts(sessions)
    submitted = submit(sessions, ctx, person.id, commit=False)
    assert submitted.request.id  # it was all made, and then not committed

    assert counts(sessions) == before  # no request, no step, and the grants still there
    assert consent_reason(client, service_headers, "demo", "1002") == "granted"
    assert suppression_check(client, service_headers, identities_of(person)) == [
        {"suppressed": False, "reason": None}] * 3
    with sessions() as db:
        assert db.get(User, person.id).email == person.email  # the account is open as it was
    assert client.get(submitted.status_path).status_code == 404


def test_leaving_everything_stops_consent_suppresses_every_identity_and_closes_the_account(
        client, sessions, ctx, person, service_headers, make_person):
    submitted = submit(sessions, ctx, person.id, reason_code="privacy", reason_text="  enough  ")

    for network, account in (("demo", "1002"), ("acme", "5002")):
        assert consent_reason(client, service_headers, network, account) == "opted_out"
    assert client.post(CONSENT, headers=service_headers, json={"checks": [
        {"network": n, "subject": person.id, "purpose": "scoring"} for n in ("demo", "acme")]}).json["results"] \
        == [{"allowed": False, "reason": "opted_out"}] * 2
    assert suppression_check(client, service_headers, identities_of(person) + identities_of(person, "acme", "5002")) \
        == [{"suppressed": True, "reason": "opted_out"}] * 6
    with sessions() as db:
        assert db.scalars(select(Grant)).all() == []  # their tokens now live only in the revoke steps
        request = db.get(OptOutRequest, submitted.request.id)
        assert (request.status, request.scope, request.reason_code, request.reason_text) == (
            "received", "all", "privacy", "enough")
        assert (request.deadline - request.requested_at).days == ctx.deadline_days
        assert request.identity_kinds == {"email": 1, "account": 2, "handle": 2, "subject": 1}
    assert REQUEST_STATES["received"] in client.get(submitted.status_path).get_data(as_text=True)
    # The address is free at once: the person can sign up again with it, while the old account goes.
    assert make_person(email=person.email).id != person.id


def test_a_person_who_chose_silence_is_suppressed_without_saying_so(client, sessions, ctx, person, service_headers):
    submit(sessions, ctx, person.id, show_opted_out=False)
    assert suppression_check(client, service_headers, identities_of(person)) == [
        {"suppressed": True, "reason": None}] * 3
    assert consent_reason(client, service_headers, "demo", "1002") == "withdrawn"


# --- the steps -------------------------------------------------------------------------------------

def test_the_steps_are_laid_in_phase_order_and_due_at_once(sessions, ctx, person, vault):
    submitted = submit(sessions, ctx, person.id)
    steps = steps_of(sessions, submitted.request.id)

    purges = [("purge", store) for store in dict.fromkeys(e.store for e in ctx.datamap.entries)]  # one a store
    assert [(s.kind, s.target) for s in steps] == [
        ("revoke", "acme"), ("revoke", "demo"), *purges,  # once: verify looks again once access is revoked
        ("forget", service.OWN_RECORDS), ("verify", "all stores"), ("receipt", "transparency log"), ("notify", "email")]
    assert [s.position for s in steps] == list(range(1, len(steps) + 1))
    phases = [s.phase for s in steps]
    # The stores are purged alongside the revocations, not behind them; forget and verify wait for them.
    assert phases == sorted(phases) and len(set(phases)) == 5  # revoke and purge, forget, verify, receipt, notify
    assert {s.phase for s in steps[2:2 + len(purges)]} == {steps[0].phase, steps[1].phase}
    assert all(s.phase > steps[0].phase for s in steps if s.kind in ("forget", "verify"))
    assert not any(service.second_pass(s) for s in steps)
    assert {s.status for s in steps} == {"pending"}
    assert {s.not_before for s in steps} == {submitted.request.requested_at}
    # A store's step purges each of its entries, in the data map's order, and the status page names each category.
    for purge in (s for s in steps if s.kind == "purge"):
        mine = [e for e in ctx.datamap.entries if e.store == purge.target]
        assert purge.params == {"store": purge.target, "entries": [e.key for e in mine],
                                "categories": list(dict.fromkeys(e.category for e in mine))}
    # Each revoke step holds its grant's tokens, still sealed: the grant itself is gone.
    demo = next(s for s in steps if s.kind == "revoke" and s.target == "demo")
    assert demo.params["account_id"] == "1002"
    assert vault.open(base64.b64decode(demo.params["access_token"])) == "at-1002"
    assert vault.open(base64.b64decode(demo.params["refresh_token"])) == "rt-1002"


def test_leaving_one_network_leaves_the_other_and_the_account_alone(client, sessions, ctx, person, service_headers):
    submitted = submit(sessions, ctx, person.id, scope="demo")

    assert consent_reason(client, service_headers, "demo", "1002") == "withdrawn"
    assert consent_reason(client, service_headers, "acme", "5002") == "granted"
    email, account, handle = suppression_check(client, service_headers, identities_of(person))
    assert not email["suppressed"] and account["suppressed"] and handle["suppressed"]
    with sessions() as db:
        assert [g.network for g in db.scalars(select(Grant))] == ["acme"]
        assert db.get(User, person.id).email == person.email
    kinds = [(s.kind, s.target) for s in steps_of(sessions, submitted.request.id)]
    assert kinds[0] == ("revoke", "demo") and ("revoke", "acme") not in kinds
    assert [t for k, t in kinds if k == "purge"] == list(dict.fromkeys(
        e.store for e in ctx.datamap.entries if e.network == "demo"))  # once: verify looks again once revoked
    [first] = [s for s in steps_of(sessions, submitted.request.id) if s.kind == "purge"]
    assert first.params["entries"] == [e.key for e in ctx.datamap.entries if e.network == "demo"]
    assert ("forget", service.OWN_RECORDS) in kinds
    assert kinds[-1] == ("notify", "email")  # the account stays, so the person hears how it went


def test_an_opt_out_with_no_address_is_not_mailed(sessions, ctx):
    submitted = submit(sessions, ctx, None, given=[Identity("account", "9001", "demo")], source="service")
    steps = steps_of(sessions, submitted.request.id)
    assert "notify" not in [s.kind for s in steps]
    # No grant, no token to revoke: each store is purged once, as when there are grants.
    assert [s.target for s in steps if s.kind == "purge"] == list(dict.fromkeys(e.store for e in ctx.datamap.entries))


# --- refusals and second submissions -------------------------------------------------------------------

@pytest.mark.parametrize("scope, reason, message", [
    ("other", None, "That network is not connected"),
    ("all", "because", "Choose one of the listed reasons"),
])
def test_a_refused_submission_changes_nothing(client, sessions, ctx, person, service_headers, scope, reason,
                                              message):
    before = counts(sessions)
    with pytest.raises(service.OptOutError, match=message):
        submit(sessions, ctx, person.id, scope=scope, reason_code=reason)
    assert counts(sessions) == before
    assert consent_reason(client, service_headers, "demo", "1002") == "granted"


def test_leaving_a_network_twice_while_the_first_is_open_answers_with_the_first(sessions, ctx, person):
    first = submit(sessions, ctx, person.id, scope="demo")
    with pytest.raises(service.AlreadyLeaving) as second:
        submit(sessions, ctx, person.id, scope="demo")
    assert second.value.request.id == first.request.id
    assert counts(sessions)["OptOutRequest"] == 1
    # Another scope is another wish: leaving everything while the network's opt-out runs is a request of its own.
    assert submit(sessions, ctx, person.id, scope="all").request.id != first.request.id


def test_a_second_opt_out_for_the_same_identities_while_the_first_is_open_makes_nothing(
        client, sessions, ctx, service_headers):
    """Matched through the suppression list (HMACs only): every identity named is listed under the open request."""
    named = {"given": [Identity("account", "9001", "demo")], "email": "nine@platform.example", "source": "service"}
    first = submit(sessions, ctx, None, **named)  # as POST /api/v1/optouts submits it
    with pytest.raises(service.AlreadyLeaving) as second:
        submit(sessions, ctx, None, **named, show_opted_out=False)

    assert second.value.request.id == first.request.id
    asked = [{"kind": "account", "network": "demo", "value": "9001"},
             {"kind": "email", "value": "nine@platform.example"}]
    # The first request's choice stands: the second changed nothing.
    assert suppression_check(client, service_headers, asked) == [{"suppressed": True, "reason": "opted_out"}] * 2
    assert counts(sessions)["OptOutRequest"] == 1
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(Suppression)) == 2


def test_an_opt_out_naming_someone_more_or_after_the_first_finished_is_a_new_request(sessions, ctx):
    named = {"given": [Identity("account", "9002", "demo")], "email": "ten@platform.example", "source": "service"}
    first = submit(sessions, ctx, None, **named)
    more = submit(sessions, ctx, None, given=[Identity("account", "9003", "demo")], email="ten@platform.example",
                  source="service")
    assert more.request.id != first.request.id  # 9003 was listed by no opt-out: there is more to do
    with sessions() as db:
        for request in db.scalars(select(OptOutRequest)):
            request.status = "completed"
        db.commit()
    again = submit(sessions, ctx, None, **named)
    assert again.request.id not in (first.request.id, more.request.id)
    assert counts(sessions)["OptOutRequest"] == 3
