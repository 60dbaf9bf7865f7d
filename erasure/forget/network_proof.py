"""A network account proven by someone who has no account here: /forget, and an agent's request waiting for
the person's own proof, both run consent.account_control's flow and then do the same three things.

- What was proven becomes identities: the account, and its handle when the network gave one.
- The token the network handed over only told us who signed in: it is revoked at once, never kept.
- A failed proof is told in plain words, and nothing is changed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import requests

from app.extensions import db
from consent import account_control
from consent.grants import may_revoke_proof_token
from consent.networks import Network
from consent.suppression import Identity
from erasure.engine.revocation import GrantTokens, revoke

log = logging.getLogger(__name__)

DISCARD_TIMEOUT = (3, 5)  # the person is waiting on the page


def identities(network: Network, proven: account_control.Proven) -> list[Identity]:
    found = [Identity("account", proven.account_id, network.key)]
    if proven.handle:
        found.append(Identity("handle", proven.handle, network.key))
    return found


def discard(network: Network, token: dict, account_id: str | None) -> None:
    """Revoke the proof's token rather than keep it.

    Where revoking ends the whole authorization (the entry's revocation.ends_grant), an account
    that a member has connected is left alone: their grant is theirs, and it would stop working.
    Nothing of this shows in the answer, so it does not tell the visitor whether the account is a member's.
    """
    if not token:
        return
    may_revoke = may_revoke_proof_token(db.session, network, account_id)
    db.session.rollback()  # no read stays open (SQLite's lock) while waiting on the network
    if not may_revoke:
        return
    tokens = GrantTokens(token.get("access_token"), token.get("refresh_token"), account_id or "")
    with requests.Session() as http:
        outcome = revoke(network, tokens, http, DISCARD_TIMEOUT)
    if not outcome.done:
        log.info("the proof's token at %s was not revoked (%s); it is not kept", network.key, outcome.kind)


@dataclass(frozen=True)
class Failure:
    """Why control was not proven, for the person (`message`) and for the log (`reason`, no personal data).
    `start_over`: the answer cannot be used at all (it did not start in this browser, or is not the
    network's); otherwise the person may simply try again from where they were."""

    message: str
    reason: str
    start_over: bool = False
    chose: bool = False  # the person said no at the network: not an error


def failure(network: Network, exc: account_control.ControlError) -> Failure:
    """What a failed proof means, said once for every page that asks for one. Discards any token first."""
    name = network.name
    if isinstance(exc, account_control.WrongState):
        return Failure(f"This sign-in at {name} did not start here, or has already been used. Nothing was changed.",
                       "a missing or wrong state", start_over=True)
    if isinstance(exc, account_control.WrongIssuer):
        return Failure(f"This answer did not come from {name}, so it was not used and nothing was changed.",
                       "another issuer named", start_over=True)
    if isinstance(exc, account_control.NoCode):
        return Failure(f"{name} sent you back without an answer. Nothing was changed.", "no code", start_over=True)
    if isinstance(exc, account_control.Declined):
        if exc.denied:
            return Failure(f"You chose not to sign in at {name}. Nothing was changed.", exc.code, chose=True)
        return Failure(f"{name} did not let the sign-in go ahead. Nothing was changed.", exc.code)
    discard(network, exc.token, None)
    if isinstance(exc, account_control.NoAccountId):
        return Failure(f"{name} did not tell us which account you signed in with. Nothing was changed.",
                       f"its userinfo lacks {network.account_id_field}")
    if isinstance(exc, account_control.Refused):
        return Failure(f"{name} did not accept this sign-in. Nothing was changed. Please try again.",
                       f"the code exchange was refused ({exc.code})")
    if isinstance(exc, account_control.Unreachable):
        return Failure(f"{name} could not be reached, so we could not check that the account is yours. "
                       "Nothing was changed. Please try again later.", "unreachable")
    kind = exc.kind if isinstance(exc, account_control.ErrorAnswer) else type(exc).__name__
    return Failure(f"{name} answered with an error. Nothing was changed. Please try again later.",
                   f"an error answer ({kind})")
