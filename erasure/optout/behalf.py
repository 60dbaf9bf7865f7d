"""An opt-out on a person's behalf, from another system (the service API, an authorized agent): the identities
it names find the one signed-up person they belong to, if any, and everything of theirs that is known goes."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.models import User
from consent.models import Grant
from consent.suppression import Identity, suppress
from erasure.context import ErasureContext
from erasure.optout import service


class SeveralOwners(ValueError):
    """The identities belong to more than one signed-up person: one request each is needed."""


def owner_of(session: Session, identities: list[Identity]) -> User | None:
    """The one signed-up person these identities belong to, if any. Raises SeveralOwners.

    Handles are not followed: a handle can pass to someone else, and this would close their account.
    """
    owners: set[str] = set()
    emails = [i.value for i in identities if i.kind == "email"]
    if emails:
        owners |= set(session.scalars(select(User.id).where(User.email.in_(emails), User.role == "person")))
    accounts = [(i.network, i.value) for i in identities if i.kind == "account"]
    if accounts:
        owners |= set(session.scalars(select(Grant.user_id).where(
            tuple_(Grant.network, Grant.account_id).in_(accounts))))
    if len(owners) > 1:
        raise SeveralOwners("These identities belong to more than one person; send one request each.")
    return session.get(User, owners.pop()) if owners else None


def submit_on_behalf(session: Session, ctx: ErasureContext, identities: list[Identity], now: dt.datetime,
                     source: str) -> tuple[service.Submitted, User | None]:
    """Opt the identities' owner out of everything. Call under service.lock(session); the caller commits.

    Raises SeveralOwners, or service.AlreadyLeaving while an opt-out of the same identities is open.
    """
    user = owner_of(session, identities)
    if user is not None:
        service.lock(session, user.id)
    grants = list(session.scalars(select(Grant).where(Grant.user_id == user.id))) if user else []
    # The platform's data is keyed by the email it knows the person by, so that one is purged and mailed.
    email = next((i.value for i in identities if i.kind == "email"), None)
    named = identities + ([Identity("email", user.email)] if user is not None else [])
    covered = {i.canonical() for i in service.identity_list(
        service.identities_in_scope(user, grants, "all", email, identities))}
    submitted = service.submit(session, ctx, user=user, grants=grants, scope="all", now=now,
                               email=email, given=identities, source=source)
    request = submitted.request
    # A request carries one email; any other (another the platform named, or the one the person signed
    # up with) is suppressed all the same.
    extra = list({i.canonical(): i for i in named if i.canonical() not in covered}.values())
    if extra:
        suppress(session, ctx.peppers, extra, "all", request.id)
        kinds = dict(request.identity_kinds or {})
        for i in extra:
            kinds[i.kind] = kinds.get(i.kind, 0) + 1
        request.identity_kinds = kinds
    return submitted, user
