"""/forget against a network where revoking one token ends the app's whole grant (revocation.ends_grant)."""
from __future__ import annotations

from tests.erasure.helpers_optout import demo_token_active, joined_person, prove_account, sealed_tokens
from tests.helpers_live_tokens import active, issued_tokens, strict


def test_proving_a_members_account_leaves_their_grant_working(app, client, make_person, login, csrf_post,
                                                               demo_network):
    member_client = app.test_client()
    joined_person(member_client, make_person, login, csrf_post, account="1002", consent=False)
    access, refresh = sealed_tokens(app, "1002")

    with strict(demo_network, "DEMO_REVOKE_ENDS_GRANT"):
        assert prove_account(client, csrf_post, "1002").status_code == 303

        # Revoking the proof's token would have ended the member's tokens too, while My data said connected.
        assert demo_token_active(demo_network, access) and demo_token_active(demo_network, refresh)
    assert "Demo Social" in member_client.get("/me").get_data(as_text=True)


def test_proving_an_account_no_member_holds_revokes_the_proofs_token(client, csrf_post, demo_network):
    with strict(demo_network, "DEMO_REVOKE_ENDS_GRANT"):
        earlier = set(issued_tokens(demo_network, "1005"))

        assert prove_account(client, csrf_post, "1005").status_code == 303

        proofs = set(issued_tokens(demo_network, "1005")) - earlier
        assert len(proofs) == 2  # a proof was made ...
        assert not any(active(demo_network, token) for token in proofs)  # ... and is already ended
