"""Export: row for row what the data map finds, valid JSON without tokens, streamed with bounded memory."""
import base64
import json
import sqlite3
import tracemalloc
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from app.models import User
from consent.models import Grant
from erasure.export import document as export
from erasure.stores import sql
from erasure.stores.datamap import identities_of
from tests.erasure.helpers_optout import joined_person, prove_account, sealed_tokens


def download(client, path: str = "/export") -> dict:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="ownstory-export-')
    assert response.headers["Cache-Control"] == "no-store"
    return json.loads(response.get_data(as_text=True))


def normalized(value):
    """A store's value as the export writes it in JSON."""
    return json.loads(json.dumps(value, default=str))


def direct_rows(platform_url: str, entry, values: list[str]) -> list[dict]:
    if not values:
        return []
    engine = create_engine(platform_url)
    marks = ", ".join(f":v{i}" for i in range(len(values)))
    with engine.connect() as conn:
        rows = conn.execute(text(f'SELECT * FROM "{entry.table}" WHERE "{entry.column}" IN ({marks}) ORDER BY id'),
                            {f"v{i}": v for i, v in enumerate(values)}).mappings().all()
    engine.dispose()
    return [{k: normalized(v) for k, v in row.items()} for row in rows]


def test_the_export_matches_the_data_map_row_for_row(app, client, make_person, login, csrf_post, platform_url,
                                                     sessions):
    person = joined_person(client, make_person, login, csrf_post, account="1002")
    assert 'href="/export"' in client.get("/me").get_data(as_text=True)
    body = client.get("/export").get_data(as_text=True)
    document = json.loads(body)
    assert document["complete"] is True and list(document)[-1] == "complete"
    assert document["format"] == "ownstory-export" and document["version"] == 1

    with sessions() as db:
        grant = db.scalar(select(Grant))
        identities = identities_of(db.get(User, person.id), [grant])
    for entry in app.extensions["datamap"].entries:
        found = [e for e in document["stores"][entry.store][entry.category]
                 if (e["table"], e["column"]) == (entry.table, entry.column)]
        assert len(found) == 1, entry
        expected = direct_rows(platform_url, entry, identities.values_for(entry))
        assert sorted(found[0]["rows"], key=lambda r: r["id"]) == expected, entry.category
        assert found[0]["row_count"] == len(expected)
    posts = document["stores"]["platform"]["posts"][0]["rows"]
    assert len(posts) == 20 and {p["author_id"] for p in posts} == {"1002"}
    assert document["stores"]["platform"]["influence scores"][0]["rows"][0]["handle"] == "omar"

    mine = document["ownstory"]
    assert mine["account"]["email"] == person.email
    assert mine["grants"] == [{"network": "demo", "account_id": "1002", "handle": "omar",
                               "scopes": ["profile", "posts"], "granted_at": mine["grants"][0]["granted_at"]}]
    assert [(c["network"], c["purpose"], c["status"]) for c in mine["consents"]] == [("demo", "scoring", "granted")]
    assert [(e["seq"], e["action"], e["method"]) for e in mine["consent_history"]] == [(1, "grant", "form")]
    assert f"email:{person.email}" in document["identities"] and "account:demo:1002" in document["identities"]

    # No token, in any form.
    access, refresh = sealed_tokens(app, "1002")
    assert access not in body and refresh not in body
    assert base64.b64encode(grant.access_token).decode() not in body
    assert "access_token" not in body and "refresh_token" not in body


def test_opt_outs_and_receipts_are_in_the_export(app, client, make_person, login, csrf_post):
    from erasure.engine.worker import Worker
    from tests.erasure.helpers_optout import submit_optout

    joined_person(client, make_person, login, csrf_post, account="1004", consent=False)
    status_path = submit_optout(client, csrf_post, "demo")  # leave one network; the account stays
    worker = Worker(app, threads=1)
    try:
        worker.drain()
    finally:
        worker.close()
    document = download(client)
    [optout] = document["ownstory"]["optouts"]
    assert optout["id"] == urlsplit(status_path).path.rsplit("/", 1)[1]
    assert optout["status"] == "completed" and optout["scope"] == "demo" and optout["receipt_id"]
    assert document["ownstory"]["grants"] == []
    assert [s["identity"] for s in document["ownstory"]["suppressions"]] == []  # not its identities any more


def test_export_from_a_forget_proof(app, client, csrf_post, make_person, login):
    member_client = app.test_client()
    member = joined_person(member_client, make_person, login, csrf_post, account="1001")
    prove_account(client, csrf_post, "1001")
    body = client.get("/forget/export").get_data(as_text=True)
    document = json.loads(body)
    assert document["complete"] is True
    assert document["identities"] == ["account:demo:1001", "handle:demo:liz"]
    assert len(document["stores"]["platform"]["posts"][0]["rows"]) == 20
    # Nothing says that a member connected this account.
    assert document["ownstory"] == {"account": None, "grants": [], "consents": [], "consent_history": [],
                                    "optouts": [], "suppressions": []}
    assert member.email not in body and member.id not in body


def test_export_needs_a_person_or_a_proof(client, make_person, login):
    assert client.get("/export").status_code == 302
    answer = client.get("/forget/export")
    assert answer.status_code == 302 and answer.headers["Location"] == "/forget"
    login(client, make_person(role="operator"))
    assert client.get("/export").status_code == 403


def test_a_store_failing_part_way_is_not_called_complete(app, client, make_person, login, csrf_post, monkeypatch):
    joined_person(client, make_person, login, csrf_post, account="1003", consent=False)
    real = sql.table_rows

    def failing(engine, entry, values, batch_size=export.BATCH):
        if entry.table != "posts":
            yield from real(engine, entry, values, batch_size)
            return
        yield next(real(engine, entry, values, 5))
        raise OperationalError("SELECT", {"v": "1003"}, Exception("disk I/O error"))

    monkeypatch.setattr(sql, "table_rows", failing)
    document = json.loads(client.get("/export").get_data(as_text=True))  # still valid JSON
    assert document["complete"] is False
    assert document["incomplete"] == ["platform/posts (posts.author_id)"]
    [posts] = document["stores"]["platform"]["posts"]
    assert posts["complete"] is False and posts["row_count"] == 5 and "only part" in posts["error"]
    assert document["stores"]["platform"]["profile"][0]["row_count"] == 1  # the other stores were read


def test_an_unexpected_failure_leaves_no_complete_marker(app, client, make_person, login, csrf_post, monkeypatch):
    joined_person(client, make_person, login, csrf_post, account="1003", consent=False)

    def broken(engine, entry, values, batch_size=export.BATCH):
        yield [{"id": 1}]
        raise RuntimeError("a bug")

    monkeypatch.setattr(sql, "table_rows", broken)
    response = client.get("/export", buffered=False)
    received = []
    with pytest.raises(RuntimeError):
        for chunk in response.response:
            received.append(chunk if isinstance(chunk, str) else chunk.decode())
    response.close()
    assert '"complete"' not in "".join(received)
    with pytest.raises(json.JSONDecodeError):
        json.loads("".join(received))


def test_a_missing_table_is_reported(app, client, make_person, login, csrf_post, platform_url):
    joined_person(client, make_person, login, csrf_post, account="1005", consent=False)
    engine = create_engine(platform_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE scores"))
    engine.dispose()
    document = json.loads(client.get("/export").get_data(as_text=True))
    assert document["complete"] is False and document["incomplete"] == ["platform/influence scores (scores.handle)"]


ROWS = 200_000


@pytest.mark.slow  # tracemalloc sees every allocation of 200,000 rows: about 10 s
def test_the_export_is_streamed_with_bounded_memory(app, client, make_person, login, csrf_post, platform_url,
                                                    tmp_path):
    joined_person(client, make_person, login, csrf_post, account="1002", consent=False)
    with sqlite3.connect(platform_url.removeprefix("sqlite:///")) as conn:
        conn.executemany("INSERT INTO posts (author_id, body, created_at) VALUES ('1002', ?, '2026-03-01 10:00:00')",
                         ((f"post number {n}, long enough to look like a real post about the weather",)
                          for n in range(ROWS)))

    response = client.get("/export", buffered=False)
    assert response.status_code == 200
    out = tmp_path / "export.json"
    pieces = size = 0
    tracemalloc.start()
    try:
        with out.open("wb") as file:
            for chunk in response.response:
                data = chunk.encode() if isinstance(chunk, str) else chunk
                file.write(data)
                size += len(data)
                pieces += 1
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        response.close()
    assert size > 20_000_000 and pieces > ROWS // export.BATCH
    assert peak < size / 4 and peak < 8_000_000, (peak, size)  # the body never sits in memory whole
    document = json.loads(out.read_text())
    assert document["complete"] is True
    assert len(document["stores"]["platform"]["posts"][0]["rows"]) == ROWS + 20
