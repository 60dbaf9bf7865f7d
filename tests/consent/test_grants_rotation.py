"""Refreshing against a network that rotates refresh tokens (Demo Social with DEMO_ROTATE_REFRESH_TOKENS)."""
from __future__ import annotations

import datetime as dt

from app.db import utcnow
from app.extensions import db
from consent.grants import access_token, store_grant
from consent.oauth import NetworkHttp
from tests.consent.helpers_connect import token_from_demo
from tests.helpers_live_tokens import active, strict


def test_each_refresh_stores_the_rotated_refresh_token(app, make_person, vault, demo_network):
    network = app.extensions["networks"]["demo"]
    person = make_person()
    token, userinfo = token_from_demo(network, "1005")
    with strict(demo_network, "DEMO_ROTATE_REFRESH_TOKENS"), app.app_context():
        grant = store_grant(db.session, vault, person.id, network, token, userinfo, utcnow())
        db.session.commit()
        seen = [vault.open(grant.refresh_token)]
        for hours in (2, 4):  # the access token has expired by then, each time
            when = utcnow() + dt.timedelta(hours=hours)
            fresh = access_token(db.session, vault, grant, network, when, NetworkHttp())
            db.session.commit()
            seen.append(vault.open(grant.refresh_token))
            assert active(demo_network, fresh)

    assert len(set(seen)) == 3  # a new refresh token each time, each stored before the next refresh spent it
    assert not active(demo_network, seen[0]) and not active(demo_network, seen[1]) and active(demo_network, seen[2])
