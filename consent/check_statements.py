"""The batch consent check's statements: built once per database, each list sent as one parameter.

An IN list of a thousand values (or of (network, account) pairs) is a different statement for every
batch size, rendered again on every call, and never prepared. Here a list is one parameter, so each
statement's text is fixed (psycopg prepares it once it has run a few times): a JSON array, read with
json_array_elements (jsonb_array_elements for the checks' triples) on PostgreSQL and json_each on
SQLite. Not a PostgreSQL array: psycopg dumps one element at a time in Python, which cost more than a
third of a check's CPU; the JSON text is one call into orjson (json.dumps took a tenth of a web process's
CPU on a batch, orjson about a fifteenth of that).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import orjson
from sqlalchemy import String, and_, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from app.models import User
from consent.models import ConsentState, Grant, Suppression

FIELDS = ("network", "value", "purpose")


def _listed(dialect: str, column, name: str):
    """`column` is one of the JSON array parameter `name`'s strings."""
    if dialect == "postgresql":
        return column.in_(select(func.json_array_elements_text(cast(bindparam(name, type_=String), postgresql.JSON))))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=String))))


def _asked(dialect: str):
    """The (network, value, purpose) triples asked, with each one's place in the list (from 0), as a table
    read from one JSON array of triples."""
    if dialect == "postgresql":
        # jsonb, not json: each field is read from the parsed element, where ->> on json parses the
        # element's text again at every use, several times a row here (about a third of the statement's time).
        each = func.jsonb_array_elements(cast(bindparam("asked", type_=String), postgresql.JSONB)).table_valued(
            "value", with_ordinality="n").render_derived("asked_json")
        fields = [each.c.value.op("->>")(literal_column(str(n))).label(name) for n, name in enumerate(FIELDS)]
        place = (each.c.n - literal_column("1")).label("place")
    else:
        each = func.json_each(bindparam("asked", type_=String)).table_valued("key", "value").alias("asked_json")
        fields = [func.json_extract(each.c.value, f"$[{n}]").label(name) for n, name in enumerate(FIELDS)]
        place = each.c.key.label("place")
    return select(place, *fields).subquery("asked")


@functools.cache
def _consents(dialect: str, by: str):
    """Each account at its network (uq_grants_network_account), or each subject by id, with the person's
    consent state for the purpose asked (consent_state's primary key), in one statement. A row names the
    check by its place in the list, which is all the caller needs and less to send back than the triple."""
    asked = _asked(dialect)
    source: type[Grant] | type[User]
    if by == "account":
        person, source = Grant.user_id, Grant
        found = and_(Grant.network == asked.c.network, Grant.account_id == asked.c.value)
    else:
        person, source = User.id, User
        found = and_(User.id == asked.c.value, User.role == "person")
    state = and_(ConsentState.subject_id == person, ConsentState.network == asked.c.network,
                 ConsentState.purpose == asked.c.purpose)
    return (select(asked.c.place, person, ConsentState.status, ConsentState.version)
            .select_from(asked).join(source, found).outerjoin(ConsentState, state))


@functools.cache
def _suppressed(dialect: str):
    return (select(Suppression.digest, Suppression.scope, Suppression.show_opted_out)
            .where(Suppression.key_id == bindparam("key_id"), _listed(dialect, Suppression.digest, "values")))


def _json(values: Sequence) -> str:
    return orjson.dumps(values).decode()


Asked = tuple[str, str, str]  # (network, account or subject, purpose)
Hit = tuple[str, str | None, int | None]  # (subject, status, version): the person, and their consent if any


def consents(session: Session, by: str, asked: Sequence[Asked]) -> list[tuple[int, Hit]]:
    """For accounts (by="account", each at its network) or subjects (by="subject"): the person each one is,
    and their consent state for the network and purpose asked, if they have one, by the place of each in
    `asked`. Those not found are left out."""
    dialect = session.get_bind().dialect.name
    rows = session.connection().execute(_consents(dialect, by), {"asked": _json(asked)}).all()
    return [(place, (subject, status, version)) for place, subject, status, version in rows]


def suppressions(session: Session, key_id: str, digests: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """The suppression entries made with pepper `key_id` among `digests`: digest -> (scope, show_opted_out)."""
    dialect = session.get_bind().dialect.name
    rows = session.connection().execute(_suppressed(dialect), {"key_id": key_id, "values": _json(digests)})
    return {digest: (scope, show) for digest, scope, show in rows}
