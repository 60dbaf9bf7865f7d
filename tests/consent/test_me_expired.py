"""My data says when a connection has expired for good, against Demo Social rotating its refresh tokens."""
from __future__ import annotations

import datetime as dt

import pytest
import requests
from sqlalchemy import select, update

from app.db import utcnow
from app.extensions import db
from consent.grants import ReconnectRequired, access_token
from consent.models import Grant
from consent.oauth import NetworkHttp
from tests.conftest import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.erasure.helpers_optout import joined_person
from tests.helpers_live_tokens import strict

EXPIRED = "Your connection to Demo Social has expired. Connect again."


def _age_the_access_token(app) -> None:
    """The clock moves on past the access token's end (as stored by Ownstory)."""
    with app.app_context():
        db.session.execute(update(Grant).values(expires_at=utcnow() - dt.timedelta(hours=1)))
        db.session.commit()


def _use_the_grant(app, vault):
    """Something that needs the access token, as a revocation or userinfo would: it refreshes first."""
    network = app.extensions["networks"]["demo"]
    with app.app_context():
        grant = db.session.scalar(select(Grant))
        try:
            return access_token(db.session, vault, grant, network, utcnow(), NetworkHttp())
        finally:
            db.session.commit()


def test_a_grant_whose_refresh_token_was_refused_shows_as_expired(app, client, make_person, login, csrf_post,
                                                                   vault, demo_network):
    with strict(demo_network, "DEMO_ROTATE_REFRESH_TOKENS"):
        joined_person(client, make_person, login, csrf_post, account="1003", consent=False)
        _age_the_access_token(app)
        page = client.get("/me").get_data(as_text=True)
        assert EXPIRED not in page  # the refresh token can still renew it

        assert _use_the_grant(app, vault)  # refreshed: the rotated tokens are stored, the line stays away
        _age_the_access_token(app)
        assert EXPIRED not in client.get("/me").get_data(as_text=True)

        with app.app_context():  # the person removes the app at the network: the refresh token dies there
            refresh = vault.open(db.session.scalar(select(Grant)).refresh_token)
        answer = requests.post(f"{demo_network.url}/oauth/revoke", data={"token": refresh,
                               "token_type_hint": "refresh_token"}, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
                               timeout=5)
        assert answer.status_code == 200
        with pytest.raises(ReconnectRequired):
            _use_the_grant(app, vault)

    page = client.get("/me").get_data(as_text=True)
    assert EXPIRED in page
    assert 'action="/networks/demo/connect"' in page
