"""Consent state changes and reads: the form's save, withdrawal, the overview and the batch check."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import write_lock
from consent import check_statements, ledger
from consent.models import ConsentState, Grant
from consent.purposes import Purpose

Pair = tuple[str, str]  # (network, purpose)
# (kind, network, value): ("account", network, account id) or ("subject", network, Ownstory user id).
Identity = tuple[str, str, str]
# The opt-out seam: given the session and every identity in a batch, return those that are
# suppressed, in one query. The opt-out feature provides it; consent never imports erasure.
Suppressed = Callable[[Session, set[Identity]], dict[Identity, str]]  # identity -> the reason to answer
REASONS = ("granted", "no_consent", "withdrawn", "reconsent_required", "opted_out", "unknown")


@dataclass(frozen=True)
class Change:
    network: str
    purpose: str
    action: str  # grant | withdraw
    version: int


@dataclass(frozen=True)
class ConsentRow:
    """One consent as a person sees it on /me and /consents."""

    network: str
    purpose: str
    title: str
    status: str  # granted | withdrawn | reconsent_required
    version: int  # the version consented to (or withdrawn)
    current_version: int | None  # None: the purpose is no longer in the catalogue
    since: dt.datetime
    changes: str = ""  # what changed, when the person is asked to consent again


class UnknownConsent(ValueError):
    """A network that is not connected, or a purpose that is not in the catalogue."""


class InvalidCheck(ValueError):
    """A check names a network or purpose we do not know; `index` and `field` say which."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(f"checks[{index}].{field}: {message}")
        self.index, self.field, self.message = index, field, message


def grants_of(session: Session, user_id: str) -> list[Grant]:
    return list(session.scalars(
        select(Grant).where(Grant.user_id == user_id).order_by(Grant.network, Grant.granted_at)))


def _states(session: Session, subject_id: str) -> dict[Pair, ConsentState]:
    rows = session.scalars(select(ConsentState).where(ConsentState.subject_id == subject_id))
    return {(s.network, s.purpose): s for s in rows}


def set_consents(session: Session, subject_id: str, wanted: set[Pair], purposes: Mapping[str, Purpose],
                 networks_connected: Collection[str], now: dt.datetime, method: str = "form") -> list[Change]:
    """Make the person's consents on their connected networks exactly `wanted`, at current versions.

    A consent granted at an older version and not ticked again stays as it is (reconsent_required):
    leaving a changed purpose unticked is not a withdrawal. Nothing is written when nothing changed.
    The caller commits.
    """
    unknown = sorted(p for p in wanted if p[0] not in networks_connected or p[1] not in purposes)
    if unknown:
        raise UnknownConsent(f"not a connected network and known purpose: {unknown[0][0]}/{unknown[0][1]}")
    write_lock(session)
    states = _states(session, subject_id)
    changes = []
    for network in sorted(networks_connected):
        for key, purpose in purposes.items():
            state = states.get((network, key))
            granted_version = state.version if state is not None and state.status == "granted" else None
            if (network, key) in wanted and granted_version != purpose.version:
                changes.append(Change(network, key, "grant", purpose.version))
            elif (network, key) not in wanted and granted_version == purpose.version:
                changes.append(Change(network, key, "withdraw", purpose.version))
    _record(session, subject_id, changes, now, method)
    return changes


def withdraw_all(session: Session, subject_id: str, now: dt.datetime, method: str,
                 network: str | None = None) -> list[Change]:
    """Withdraw every granted consent, at any version (or only one network's). The caller commits."""
    write_lock(session)
    states = sorted(_states(session, subject_id).items())
    changes = [Change(s.network, s.purpose, "withdraw", s.version)
               for _pair, s in states if s.status == "granted" and network in (None, s.network)]
    _record(session, subject_id, changes, now, method)
    return changes


def _record(session: Session, subject_id: str, changes: list[Change], now: dt.datetime, method: str) -> None:
    """The changes on the person's chain, in the same few statements however many there are (ledger.append_all)."""
    ledger.append_all(session, subject_id, [ledger.Change(c.network, c.purpose, c.version, c.action, method, now)
                                            for c in changes])


def consent_overview(session: Session, subject_id: str, purposes: Mapping[str, Purpose]) -> list[ConsentRow]:
    """Every consent the person ever gave or withdrew, as it stands now."""
    rows = []
    for (network, key), state in sorted(_states(session, subject_id).items()):
        purpose = purposes.get(key)
        status = state.status
        if status == "granted" and purpose is not None and state.version != purpose.version:
            status = "reconsent_required"
        rows.append(ConsentRow(
            network=network, purpose=key, title=purpose.title if purpose else key, status=status,
            version=state.version, current_version=purpose.version if purpose else None, since=state.updated_at,
            changes=purpose.changes if purpose and status == "reconsent_required" else "",
        ))
    return rows


def check(session: Session, checks: list[dict], purposes: Mapping[str, Purpose], networks: Collection[str],
          suppressed: Suppressed | None = None) -> list[dict]:
    """Answer a batch of consent checks, in order, with a fixed number of queries.

    One query for the accounts and one for the subjects asked resolve each to its person
    (uq_grants_network_account, or users by id) and read their consent state by its primary key in
    the same statement; then the `suppressed` seam (the opt-out list) is asked once for every
    identity. With no seam, nobody is opted out.

    The opt-out list is asked about the identity each check names, and not also about the person an
    account turns out to be: a person is listed by their subject only when they leave everything, and
    the transaction that lists them also ends every grant they hold and closes their account, which
    connects nothing afterwards (consent.connect.account_closing, under the user row's lock). So an
    account found connected is never a listed person's, while the account itself may be listed (it was
    left, and is asked about), and a check by subject asks about the subject. Were a grant to come in
    behind such an opt-out all the same (forget revokes any it finds), its check could still not answer
    granted: that transaction withdrew every consent of the person, and their account signs in no more.
    """
    _known(checks, purposes, networks)
    # Each check by the identity it names (its account at the network, or its subject), and what it asks.
    names = ["account" if "account" in c else "subject" for c in checks]
    asked = [(c["network"], c[name], c["purpose"]) for c, name in zip(checks, names, strict=True)]
    hits: list[check_statements.Hit | None] = [None] * len(checks)
    for by in ("account", "subject"):
        places = [i for i, name in enumerate(names) if name == by]
        if places:
            for n, person in check_statements.consents(session, by, [asked[i] for i in places]):
                hits[places[n]] = person
    identities = [(name, network, value) for name, (network, value, _purpose) in zip(names, asked, strict=True)]
    held = suppressed(session, set(identities)) if suppressed else {}

    results = []
    for a, hit, identity in zip(asked, hits, identities, strict=True):
        listed = held.get(identity) if held else None
        if listed:
            reason = listed
        elif hit is None:
            reason = "unknown"
        else:
            reason = _reason(hit[1], hit[2], purposes[a[2]])
        results.append({"allowed": reason == "granted", "reason": reason})
    return results


def _known(checks: list[dict], purposes: Mapping[str, Purpose], networks: Collection[str]) -> None:
    """Raise InvalidCheck for the first check naming a network or a purpose that is not in the catalogue.
    The names a batch uses are looked up once each: a batch asks about one or two of each a thousand times."""
    unknown_networks = {c["network"] for c in checks}.difference(networks)
    unknown_purposes = {c["purpose"] for c in checks}.difference(purposes)
    if not unknown_networks and not unknown_purposes:
        return
    for i, c in enumerate(checks):
        if c["network"] in unknown_networks:
            raise InvalidCheck(i, "network", f"unknown network {c['network']!r}")
        if c["purpose"] in unknown_purposes:
            raise InvalidCheck(i, "purpose", f"unknown purpose {c['purpose']!r}")


def _reason(status: str | None, version: int | None, purpose: Purpose) -> str:
    if status is None:
        return "no_consent"
    if status == "withdrawn":
        return "withdrawn"
    return "granted" if version == purpose.version else "reconsent_required"
