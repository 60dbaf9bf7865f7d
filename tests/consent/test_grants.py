"""Grants: storing and renewing connections, refreshing tokens at the live Demo Social, re-keying."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import select

from app.db import utcnow
from app.security import Vault, VaultError
from consent.grants import (
    AccountTaken,
    MissingAccountId,
    NetworkError,
    ReconnectRequired,
    access_token,
    rotate_tokens,
    store_grant,
)
from consent.models import Grant
from consent.oauth import NetworkHttp
from tests.conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, TOKEN_KEY
from tests.consent.helpers_connect import token_from_demo
from tests.helpers_live_tokens import active

NOW = dt.datetime(2026, 11, 25, 19, 0, tzinfo=dt.UTC)
LIZ = {"sub": "1001", "preferred_username": "liz", "name": "Liz Lemon"}


@pytest.fixture
def demo(app):
    return app.extensions["networks"]["demo"]


@pytest.fixture
def person(make_person):
    return make_person()


def test_a_grant_keeps_the_account_and_seals_the_tokens(session, vault, demo, person):
    token = {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600, "scope": "profile",
             "token_type": "bearer"}
    grant = store_grant(session, vault, person.id, demo, token, {"sub": 1001, "preferred_username": "liz"}, NOW)
    session.commit()

    stored = session.scalar(select(Grant).where(Grant.id == grant.id))
    assert (stored.user_id, stored.network, stored.account_id, stored.handle) == (person.id, "demo", "1001", "liz")
    assert stored.scopes == "profile"  # what the network granted, not what was asked
    assert stored.granted_at == NOW and stored.expires_at == NOW + dt.timedelta(hours=1)
    assert b"at-1" not in stored.access_token and b"rt-1" not in stored.refresh_token
    assert (vault.open(stored.access_token), vault.open(stored.refresh_token)) == ("at-1", "rt-1")


def test_scopes_fall_back_to_those_asked_for_and_commas_are_understood(session, vault, demo, person):
    plain = store_grant(session, vault, person.id, demo, {"access_token": "a"}, LIZ, NOW)
    assert plain.scopes == "profile posts" and plain.expires_at is None
    github_like = store_grant(session, vault, person.id, demo, {"access_token": "b", "scope": "read:user,repo"},
                              {"sub": "2"}, NOW)
    assert github_like.scope_list == ["read:user", "repo"] and github_like.handle is None


def test_dotted_fields_reach_into_nested_userinfo(session, vault, demo, person):
    x_like = dataclasses.replace(demo, account_id_field="data.id", handle_field="data.username")
    grant = store_grant(session, vault, person.id, x_like, {"access_token": "a"},
                        {"data": {"id": "2244994945", "username": "XDevelopers"}}, NOW)
    assert (grant.account_id, grant.handle) == ("2244994945", "XDevelopers")


@pytest.mark.parametrize("userinfo", [{}, {"sub": ""}, {"sub": None}, {"sub": {"id": 1}}, {"sub": "x" * 256}])
def test_userinfo_without_a_usable_account_id_is_refused(session, vault, demo, person, userinfo):
    with pytest.raises(MissingAccountId):
        store_grant(session, vault, person.id, demo, {"access_token": "a"}, userinfo, NOW)
    assert session.scalars(select(Grant)).all() == []


def test_reconnecting_updates_in_place_and_keeps_the_first_date(session, vault, demo, person):
    first = store_grant(session, vault, person.id, demo, {"access_token": "at-1", "refresh_token": "rt-1"}, LIZ, NOW)
    session.commit()
    later = NOW + dt.timedelta(days=3)

    again = store_grant(session, vault, person.id, demo, {"access_token": "at-2", "expires_in": 60},
                        {**LIZ, "preferred_username": "liz2"}, later)
    session.commit()

    assert again.id == first.id and session.scalars(select(Grant)).all() == [again]
    assert again.granted_at == NOW and again.handle == "liz2"
    assert vault.open(again.access_token) == "at-2"
    assert vault.open(again.refresh_token) == "rt-1"  # none was sent this time: the old one still works
    assert again.expires_at == later + dt.timedelta(seconds=60)


def test_an_account_held_by_another_person_is_refused(session, vault, demo, person, make_person):
    other = make_person()
    store_grant(session, vault, person.id, demo, {"access_token": "mine"}, LIZ, NOW)
    session.commit()

    with pytest.raises(AccountTaken):
        store_grant(session, vault, other.id, demo, {"access_token": "theirs"}, LIZ, NOW)

    [grant] = session.scalars(select(Grant)).all()
    assert grant.user_id == person.id and vault.open(grant.access_token) == "mine"


def test_a_fresh_token_is_used_as_it_is(session, vault, demo, person, demo_state):
    grant = store_grant(session, vault, person.id, demo, {"access_token": "at", "refresh_token": "rt",
                                                          "expires_in": 3600}, LIZ, NOW)
    calls = demo_state.calls["token"]

    assert access_token(session, vault, grant, demo, NOW + dt.timedelta(minutes=58), NetworkHttp()) == "at"
    assert demo_state.calls["token"] == calls


@pytest.mark.demo_behaviours("discovery", "offline_needs_consent", "rotation", "resource")
def test_an_expiring_token_is_refreshed_at_the_network(session, vault, demo, person, demo_state, demo_network):
    token, userinfo = token_from_demo(demo, account="1003")
    stored_at = utcnow()
    grant = store_grant(session, vault, person.id, demo, token, userinfo, stored_at)
    session.commit()
    calls = demo_state.calls["token"]
    almost = grant.expires_at - dt.timedelta(seconds=30)  # inside the 60 s margin

    fresh = access_token(session, vault, grant, demo, almost, NetworkHttp())
    session.commit()

    assert fresh != token["access_token"]
    assert demo_state.calls["token"] == calls + 1
    session.expire_all()
    stored = session.get(Grant, grant.id)
    assert vault.open(stored.access_token) == fresh and fresh.encode() not in stored.access_token
    assert active(demo_network, vault.open(stored.refresh_token))  # the one kept is the one the network takes now
    assert stored.expires_at == almost + dt.timedelta(seconds=token["expires_in"])
    answer = requests.get(demo.userinfo_url, headers={"Authorization": f"Bearer {fresh}"}, timeout=5)
    assert answer.json()["preferred_username"] == "mei"
    # Next time it is fresh again: no second refresh.
    assert access_token(session, vault, stored, demo, almost, NetworkHttp()) == fresh
    assert demo_state.calls["token"] == calls + 1


def test_a_revoked_refresh_token_means_reconnecting(session, vault, demo, person):
    token, userinfo = token_from_demo(demo)
    grant = store_grant(session, vault, person.id, demo, token, userinfo, NOW)
    revoked = requests.post(demo.revocation.url, data={"token": token["refresh_token"],
                                                        "token_type_hint": "refresh_token"},
                            auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), timeout=5)
    assert revoked.status_code == 200

    with pytest.raises(ReconnectRequired):
        access_token(session, vault, grant, demo, NOW + dt.timedelta(days=1), NetworkHttp())


def test_an_expired_token_without_a_refresh_token_means_reconnecting(session, vault, demo, person, demo_state):
    grant = store_grant(session, vault, person.id, demo, {"access_token": "at", "expires_in": 60}, LIZ, NOW)
    calls = demo_state.calls["token"]

    with pytest.raises(ReconnectRequired):
        access_token(session, vault, grant, demo, NOW + dt.timedelta(hours=1), NetworkHttp())
    assert demo_state.calls["token"] == calls


def test_a_network_that_is_down_cannot_refresh(session, vault, demo, person, demo_network):
    grant = store_grant(session, vault, person.id, demo, {"access_token": "at", "refresh_token": "rt",
                                                          "expires_in": 60}, LIZ, NOW)
    demo_network.stop()

    with pytest.raises(NetworkError):
        access_token(session, vault, grant, demo, NOW + dt.timedelta(hours=1), NetworkHttp())
    assert vault.open(grant.access_token) == "at"  # nothing was lost


def test_rotation_re_encrypts_under_the_new_first_key(session, demo, make_person):
    old = Vault([TOKEN_KEY])
    people = [make_person() for _ in range(6)]  # first: making one commits in a session of its own
    for n in range(5):
        store_grant(session, old, people[n].id, demo, {"access_token": f"at-{n}", "refresh_token": f"rt-{n}"},
                    {"sub": str(n)}, NOW)
    empty = store_grant(session, old, people[5].id, demo, {"access_token": "gone"}, {"sub": "99"}, NOW)
    empty.access_token = None  # tokens destroyed (opted out): nothing to rotate
    session.commit()
    new_key = Fernet.generate_key().decode()

    assert rotate_tokens(session, Vault([new_key, TOKEN_KEY]), batch_size=2) == 5
    session.commit()

    session.expire_all()
    only_new, only_old = Vault([new_key]), Vault([TOKEN_KEY])
    for grant in session.scalars(select(Grant).where(Grant.access_token.is_not(None))):
        n = grant.account_id
        assert only_new.open(grant.access_token) == f"at-{n}" and only_new.open(grant.refresh_token) == f"rt-{n}"
        with pytest.raises(VaultError):
            only_old.open(grant.access_token)


def test_rotation_stops_at_a_token_no_key_can_open(session, demo, person):
    stranger = Vault([Fernet.generate_key().decode()])
    grant = store_grant(session, stranger, person.id, demo, {"access_token": "at"}, LIZ, NOW)
    session.commit()

    with pytest.raises(VaultError) as err:
        rotate_tokens(session, Vault([TOKEN_KEY]))
    assert grant.id in str(err.value)
