"""A connect that fails after the token exchange leaves no live token at the network (counted by introspection)."""
from __future__ import annotations

import pytest

from tests.conftest import networks_toml
from tests.consent.helpers_connect import (
    answer_at_network,
    connect_through_demo,
    flashed,
    local_path,
    start_connect,
    stored_grants,
)
from tests.helpers_live_tokens import active, issued_tokens, live_tokens, strict


@pytest.fixture
def person(make_person, login, client):
    user = make_person()
    login(client, user)
    return user


@pytest.mark.demo_behaviours("ends_grant", "unsupported_token_type")
@pytest.mark.parametrize("status", [500, 401])
def test_a_failed_userinfo_revokes_the_tokens_just_given(app, client, csrf_post, person, demo_network, demo_state,
                                                          status):
    earlier = set(issued_tokens(demo_network, "1003"))
    back = answer_at_network(start_connect(client, csrf_post).headers["Location"], account="1003")
    demo_state.faults.set("userinfo", status=status, times=1)

    response = client.get(local_path(back))

    assert response.headers["Location"] == "/me"
    assert "nothing was changed" in flashed(client)
    assert stored_grants(app) == []
    given = set(issued_tokens(demo_network, "1003")) - earlier
    assert len(given) == 2 and not any(active(demo_network, token) for token in given)


def test_a_missing_account_id_revokes_the_tokens_just_given(make_app, make_person, login, csrf_post, demo_network,
                                                             tmp_path):
    catalogue = tmp_path / "no-id.toml"
    shipped = networks_toml(demo_network.url)
    catalogue.write_text(shipped.replace('account_id_field = "sub"', 'account_id_field = "uid"'))
    app = make_app(networks=catalogue)
    client = app.test_client()
    login(client, make_person())
    before = live_tokens(demo_network, "1003")

    response = connect_through_demo(client, csrf_post, account="1003")

    assert "did not tell us which account you connected" in flashed(client)
    assert response.headers["Location"] == "/me"
    assert live_tokens(demo_network, "1003") == before


def _with_ends_grant(demo_network, tmp_path, ends_grant: bool):
    catalogue = tmp_path / "networks.toml"
    catalogue.write_text(networks_toml(demo_network.url) + f"ends_grant = {str(ends_grant).lower()}\n")
    return catalogue


def test_an_account_taken_revokes_the_tokens_just_given(make_app, make_person, login, csrf_post, demo_network,
                                                        tmp_path):
    app = make_app(networks=_with_ends_grant(demo_network, tmp_path, False))
    holder, other = app.test_client(), app.test_client()
    login(holder, make_person())
    login(other, make_person())
    connect_through_demo(holder, csrf_post, account="1004")
    before = live_tokens(demo_network, "1004")

    connect_through_demo(other, csrf_post, account="1004")

    assert "already connected to another Ownstory account" in flashed(other)
    assert live_tokens(demo_network, "1004") == before


def test_an_account_taken_where_revoking_ends_the_grant_leaves_the_holders_grant_alone(
        make_app, make_person, login, csrf_post, demo_network, tmp_path):
    app = make_app(networks=_with_ends_grant(demo_network, tmp_path, True))
    holder, other = app.test_client(), app.test_client()
    login(holder, make_person())
    login(other, make_person())
    with strict(demo_network, "DEMO_REVOKE_ENDS_GRANT"):
        earlier = set(issued_tokens(demo_network, "1004"))
        connect_through_demo(holder, csrf_post, account="1004")
        holders = set(issued_tokens(demo_network, "1004")) - earlier

        connect_through_demo(other, csrf_post, account="1004")

        assert "already connected to another Ownstory account" in flashed(other)
        # Revoking the refused token would have ended the holder's grant too: it is dropped unrevoked.
        assert len(holders) == 2 and all(active(demo_network, token) for token in holders)
        assert len(stored_grants(app, network="demo", account_id="1004")) == 1
