"""A platform's own store kind, the README's search index: registered through the entry point group as a
separate package would be, and served by a real index on loopback, it is counted, exported and purged
like the platform's tables when a person leaves."""
from __future__ import annotations

import json
import re
import sys
import threading
from urllib.parse import urlsplit

import pytest
from flask import Flask, jsonify, request
from sqlalchemy import select

from app.settings import ROOT, ConfigError
from erasure.models import ErasureStep, OptOutRequest, Receipt
from erasure.receipts.issue import claims_of
from erasure.stores.datamap import load_datamap
from erasure.stores.kinds import registered_kinds
from tests.erasure.helpers_optout import joined_person, submit_optout
from tests.helpers_servers import serve

SEARCH_STORE = """
[[stores]]
name = "search"
kind = "search"
url_env = "OWNSTORY_TEST_SEARCH_URL"
field = "owner_email"
category = "search profile"
identity = "email"
"""


def readme_kind() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    [code] = [b for b in blocks if "class SearchIndex(StoreKind)" in b]
    return code


def index_app(docs: dict[str, dict]) -> Flask:
    """A search index's documents API: count, page through and delete a batch of documents by a field."""
    index = Flask("search index")
    lock = threading.Lock()

    @index.route("/documents", methods=["GET", "DELETE"])
    def documents():
        args = request.args
        [field] = [k for k in args if k not in ("limit", "after")]
        wanted = set(args.getlist(field))
        with lock:
            mine = sorted(i for i, doc in docs.items() if doc[field] in wanted)
            limit = int(args.get("limit", 1000))
            if request.method == "DELETE":
                for i in mine[:limit]:
                    del docs[i]
                return jsonify(deleted=len(mine[:limit]))
            if limit == 0:
                return jsonify(total=len(mine))
            return jsonify(documents=[docs[i] for i in mine if i > args.get("after", "")][:limit])

    return index


@pytest.fixture
def search_kind(tmp_path, monkeypatch):
    """The README's kind as a package of its own, installed beside Ownstory: a module and its dist-info."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "readme_search_index.py").write_text(readme_kind())
    info = site / "readme_search_index-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: readme-search-index\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ownstory.stores]\nsearch = readme_search_index:SearchIndex\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("readme_search_index", None)


@pytest.fixture
def index(monkeypatch):
    docs: dict[str, dict] = {}
    server = serve(index_app(docs))
    monkeypatch.setenv("OWNSTORY_TEST_SEARCH_URL", f"{server.url}/documents")
    yield server, docs
    server.stop()


@pytest.fixture
def app(make_app, config_files, search_kind, index):
    """The app with the shipped data map and the search index beside the platform's tables."""
    config_files["datamap"].write_text(config_files["datamap"].read_text() + SEARCH_STORE)
    return make_app()


def test_the_readme_kind_is_under_40_lines_and_registers_through_the_entry_point_group(search_kind):
    assert len(readme_kind().splitlines()) < 40
    kinds = registered_kinds()
    assert kinds["search"].__module__ == "readme_search_index" and kinds["sql"].kind == "sql"


def test_its_store_needs_the_url_in_the_environment(search_kind, tmp_path):
    path = tmp_path / "datamap.toml"
    path.write_text(SEARCH_STORE)
    with pytest.raises(ConfigError) as err:
        load_datamap(path, environ={})
    assert (err.value.where, err.value.field) == (str(path), "stores.search.url_env")


def test_a_person_leaving_is_counted_exported_and_purged_from_it(app, client, make_person, login, csrf_post,
                                                                   worker, sessions, index):
    server, docs = index
    person = joined_person(client, make_person, login, csrf_post, account="1002")
    for n in range(5):
        docs[f"d{n}"] = {"id": f"d{n}", "owner_email": person.email, "text": f"profile {n}"}
    docs["other"] = {"id": "other", "owner_email": "someone.else@example.org", "text": "not theirs"}

    me = client.get("/me").get_data(as_text=True)
    assert re.search(r"<th scope=\"row\">Search profile</th>\s*<td>5 search profile entries</td>", me), me
    export = json.loads(client.get("/export").get_data(as_text=True))
    [found] = export["stores"]["search"]["search profile"]
    assert found["row_count"] == 5 and [d["id"] for d in found["rows"]] == [f"d{n}" for n in range(5)]
    assert export["complete"] is True

    server.stop()  # the index is down for a while: My data says so, and the purge waits for it
    me = client.get("/me").get_data(as_text=True)
    assert re.search(r"Search profile</th>\s*<td>could not be counted just now</td>", me)
    status_path = submit_optout(client, csrf_post, "all")
    worker.drain()
    request_id = urlsplit(status_path).path.rsplit("/", 1)[1]
    with sessions() as db:
        assert db.get(OptOutRequest, request_id).status != "completed"
        purge = db.scalar(select(ErasureStep).where(ErasureStep.request_id == request_id,
                                                    ErasureStep.target == "search"))
    assert purge.status == "retrying" and purge.last_error == "store 'search': the index did not answer"
    assert purge.params == {"store": "search", "entries": ["search profile"], "categories": ["search profile"]}
    assert len(docs) == 6
    server.start()
    worker.run_once(now=purge.not_before)  # the retry, when it is due
    worker.drain()

    assert list(docs) == ["other"]
    with sessions() as db:
        assert db.get(OptOutRequest, request_id).status == "completed"
        claims = claims_of(db.scalar(select(Receipt).where(Receipt.request_id == request_id)))
    assert {"store": "search", "category": "search profile", "rows": 5} in claims["purged"]
