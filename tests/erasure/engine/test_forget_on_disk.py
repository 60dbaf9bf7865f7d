"""After leaving, the person's email and reason are gone from Ownstory's database files, not only from its tables."""
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from erasure.models import OptOutRequest, RequestStatus
from tests.erasure.helpers_optout import joined_person, submit_optout

EMAIL = "unmistakable.leaver.4d91@example.org"
REASON = "my own words, unmistakable 7c2e"


def database_files(database_url: str) -> list[Path]:
    path = Path(make_url(database_url).database)
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def test_the_email_and_reason_of_a_person_who_left_are_not_on_disk(app, client, make_person, login, csrf_post,
                                                                    worker, sessions, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's files; what PostgreSQL keeps, and what to do about it, is in the README")
    joined_person(client, lambda: make_person(EMAIL), login, csrf_post, account="1003")
    files = database_files(database_url)
    on_disk = b"".join(f.read_bytes() for f in files if f.exists())
    assert EMAIL.encode() in on_disk  # there to begin with: the test looks in the right place

    submit_optout(client, csrf_post, "all", reason="other", reason_text=REASON)
    worker.drain()
    with sessions() as db:
        assert db.scalar(select(OptOutRequest.status)) == RequestStatus.COMPLETED

    on_disk = b"".join(f.read_bytes() for f in files if f.exists())
    assert EMAIL.encode() not in on_disk
    assert REASON.encode() not in on_disk
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o600" for f in files}
