"""The data map: the shipped one loads, each store by its kind, mistakes name the file and field,
counts match the stores."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from app.settings import ROOT, ConfigError
from erasure.stores.config import string
from erasure.stores.datamap import Identities, count_held, load_datamap
from erasure.stores.kinds import ENTRY_POINT_GROUP, Entry, StoreKind, StoreUnavailable, registered_kinds
from erasure.stores.sql import SqlStore, TableEntry

NETWORKS = {"demo": object()}

GOOD_TABLE = """
[[stores]]
name = "platform"
url = "sqlite:///{path}"

[[stores.tables]]
table = "posts"
category = "posts"
column = "author_id"
identity = "account"
network = "demo"
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "datamap.toml"
    path.write_text(body)
    return path


def test_the_shipped_map_loads():
    datamap = load_datamap(ROOT / "config" / "datamap.toml", networks=NETWORKS,
                           environ={"BILLING_ERASE_URL": "http://127.0.0.1:5000/demo/billing"})
    assert {e.category for e in datamap.entries} >= {"posts", "profile", "endorsements"}
    received = [e for e in datamap.entries if e.category == "endorsements received"]
    assert received[0].action == "nullify" and received[0].columns == ("receiver_id",)
    store = datamap.store("platform")
    assert isinstance(store, SqlStore) and store.kind == "sql"  # the default kind
    assert datamap.find("platform", "endorsements.receiver_id") == (store, received[0])


def test_the_sql_kind_is_registered_through_the_entry_point_group():
    """What `pip install -e .` (make) puts in the venv: the built-in kinds, found as a platform's would be."""
    assert registered_kinds()["sql"] is SqlStore
    listed = subprocess.run([sys.executable, "-c", "from importlib.metadata import entry_points; "
                             f"print(sorted(p.value for p in entry_points(group={ENTRY_POINT_GROUP!r})))"],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    assert "erasure.stores.sql:SqlStore" in listed.stdout


@pytest.mark.parametrize("change, field", [
    (('identity = "account"', 'identity = "cookie"'), "stores.platform.tables[0].identity"),
    (('network = "demo"', 'network = "myspace"'), "stores.platform.tables[0].network"),
    (('table = "posts"', 'table = "posts; DROP TABLE posts"'), "stores.platform.tables[0].table"),
    (('column = "author_id"', 'column = "author_id"\ncolor = "red"'), "stores.platform.tables[0].color"),
    (('column = "author_id"', 'column = "author_id"\naction = "nullify"'), "stores.platform.tables[0].columns"),
    (('column = "author_id"', 'column = "author_id"\nretention_days = 0'), "stores.platform.tables[0].retention_days"),
    (('url = "sqlite:///{path}"', 'url_env = "OWNSTORY_TEST_UNSET_VARIABLE"'), "stores.platform.url_env"),
    (('url = "sqlite:///{path}"', 'url = "platform.db"'), "stores.platform.url"),
    (('url = "sqlite:///{path}"', 'url = "postgresql+psycopg://ownstory:hunter2@db/platform"'), "stores.platform.url"),
    (('url = "sqlite:///{path}"', 'url = "mysql://db/platform"'), "stores.platform.url"),  # no MySQLdb: pymysql
    (('name = "platform"', 'name = ""'), "stores[0].name"),
    (('name = "platform"', 'name = "platform"\nkind = "mongodb"'), "stores.platform.kind"),
    (('name = "platform"', 'name = "platform"\nbucket = "media"'), "stores.platform.bucket"),
    *((('name = "platform"', f'name = "platform"\nmax_in_flight = {bad}'), "stores.platform.max_in_flight")
      for bad in ("0", "65", '"hunter2"', "2.5", "true")),
    *((('name = "platform"', f'name = "platform"\nholds_no_personal_data = {bad}'),
       "stores.platform.holds_no_personal_data") for bad in ('"flags"', '["flags; DROP TABLE posts"]', '[""]', '[3]',
                                                            '["flags", "Posts"]')),
    (('network = "demo"', 'network = "demo"\n\n[[stores.tables]]\ntable = "posts"\ncategory = "more posts"\n'
                          'column = "author_id"\nidentity = "account"\nnetwork = "demo"'), "stores.platform"),
])
def test_mistakes_name_the_file_and_field(tmp_path, change, field):
    path = write(tmp_path, GOOD_TABLE.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_datamap(path, networks=NETWORKS, environ={})
    assert err.value.where == str(path)
    assert err.value.field == field
    assert "\n" not in str(err.value) and "hunter2" not in str(err.value)


def test_an_unknown_kind_is_refused_naming_the_known_ones(tmp_path):
    path = write(tmp_path, GOOD_TABLE.replace('name = "platform"', 'name = "platform"\nkind = "mongodb"'))
    with pytest.raises(ConfigError) as err:
        load_datamap(path, networks=NETWORKS, kinds={"sql": SqlStore, "index": DictIndex})
    assert str(err.value) == (f"{path}: stores.platform.kind: unknown kind 'mongodb'; the known kinds are "
                              "index, sql")
    with pytest.raises(ConfigError, match="no store kinds are installed"):
        load_datamap(path, networks=NETWORKS, kinds={})


def test_a_url_from_the_environment_may_carry_its_password(tmp_path):
    body = GOOD_TABLE.replace('url = "sqlite:///{path}"', 'url_env = "PLATFORM_DATABASE_URL"')
    datamap = load_datamap(write(tmp_path, body), networks=NETWORKS,
                           environ={"PLATFORM_DATABASE_URL": "mysql+pymysql://u:secret@db/platform"})
    assert datamap.store("platform").kind == "sql" and "secret" not in repr(datamap.stores)


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_datamap(tmp_path / "nope.toml", networks=NETWORKS)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_datamap(write(tmp_path, "[[stores]\nname="), networks=NETWORKS)


def test_url_env_keeps_the_url_out_of_the_file(tmp_path):
    body = GOOD_TABLE.replace('url = "sqlite:///{path}"', 'url_env = "PLATFORM_DATABASE_URL"')
    datamap = load_datamap(write(tmp_path, body), networks=NETWORKS,
                           environ={"PLATFORM_DATABASE_URL": "postgresql+psycopg://u:secret@db/platform"})
    assert "secret" not in repr(datamap.stores[0])


# --- a kind of a platform's own, registered beside sql: what the README's example does ---------------

@dataclass(frozen=True)
class Doc(Entry):
    field: str = "owner"


class DictIndex(StoreKind):
    """A search index in a dict: documents by id, each naming its owner."""

    kind = "index"
    docs: dict[str, dict] = {}
    reachable = True

    @classmethod
    def load(cls, where: str, label: str, raw: Mapping[str, Any], networks, environ) -> DictIndex:
        name = string(where, f"{label}.name", raw.get("name"))
        category = string(where, f"{label}.category", raw.get("category"))
        return cls(name, (Doc(store=name, category=category, identity="email", network=None),))

    def _mine(self, entry: Entry, values: list[str]) -> list[str]:
        if not self.reachable:
            raise StoreUnavailable(self.name, "the index is down")
        return [i for i, doc in self.docs.items() if doc[entry.field] in values]

    def count(self, entry: Entry, values: list[str]) -> int:
        return len(self._mine(entry, values))

    def purge(self, entry: Entry, values: list[str], on_batch=None, batch_size: int = 1000) -> int:
        mine = self._mine(entry, values)
        for i in mine:
            del self.docs[i]
        return len(mine)

    def export(self, entry: Entry, values: list[str], batch_size: int = 1000) -> Iterator[list[dict]]:
        yield [self.docs[i] for i in self._mine(entry, values)]


def test_any_store_may_take_only_so_many_erasures_at_once(tmp_path):
    # max_in_flight is the data map's, for a store of any kind: a kind (here a platform's own) never sees it.
    body = GOOD_TABLE.replace('name = "platform"', 'name = "platform"\nmax_in_flight = 3') + \
        '\n[[stores]]\nname = "search"\nkind = "index"\ncategory = "profiles"\nmax_in_flight = 1\n'
    datamap = load_datamap(write(tmp_path, body), networks=NETWORKS, kinds={"sql": SqlStore, "index": DictIndex})
    assert [(s.name, s.max_in_flight) for s in datamap.stores] == [("platform", 3), ("search", 1)]
    datamap.dispose()
    datamap = load_datamap(write(tmp_path, GOOD_TABLE), networks=NETWORKS, environ={})
    assert datamap.store("platform").max_in_flight is None  # as many as the workers have threads
    datamap.dispose()


def test_stores_of_several_kinds_are_counted_each_by_its_own(tmp_path):
    db = tmp_path / "platform.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id TEXT)"))
        conn.execute(text("INSERT INTO posts (author_id) VALUES ('7'), ('7'), ('8')"))
    engine.dispose()
    body = GOOD_TABLE.format(path=db) + '\n[[stores]]\nname = "search"\nkind = "index"\ncategory = "profiles"\n'
    DictIndex.docs = {"a": {"owner": "me@example.org"}, "b": {"owner": "you@example.org"}}
    datamap = load_datamap(write(tmp_path, body), networks=NETWORKS, kinds={"sql": SqlStore, "index": DictIndex})
    me = Identities(email="me@example.org", accounts=(("demo", "7"),))

    held = count_held(datamap, me)
    assert [(h.store, h.category, h.rows) for h in held] == [("platform", "posts", 2), ("search", "profiles", 1)]
    DictIndex.reachable = False
    try:
        held = count_held(datamap, me)  # one store down: the others still count
    finally:
        DictIndex.reachable = True
    assert [(h.store, h.category, h.rows) for h in held] == [("platform", "posts", 2), ("search", "profiles", None)]
    datamap.dispose()


def test_a_persons_values_for_an_entry_are_the_entrys_to_say():
    posts = TableEntry(store="platform", category="posts", identity="account", network="demo", table="posts",
                       column="author_id")
    me = Identities(subject="s", email="me@example.org", accounts=(("demo", "7"), ("other", "9"), ("demo", "3")))
    assert me.values_for(posts) == posts.values_in(me) == ["3", "7"]
    assert me.values_for(Doc(store="search", category="profiles", identity="email", network=None)) == [
        "me@example.org"]


def test_counts_are_per_category_and_only_the_persons(tmp_path):
    db = tmp_path / "platform.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id TEXT)"))
        conn.execute(text("INSERT INTO posts (author_id) VALUES ('7'), ('7'), ('8')"))
    engine.dispose()
    datamap = load_datamap(write(tmp_path, GOOD_TABLE.format(path=db)), networks=NETWORKS)
    held = count_held(datamap, Identities(subject="s", accounts=(("demo", "7"),)))
    assert [(h.store, h.category, h.rows) for h in held] == [("platform", "posts", 2)]
    nobody = count_held(datamap, Identities(subject="s"))
    assert nobody[0].rows == 0
    datamap.dispose()


def test_an_unreachable_store_is_reported_not_raised(tmp_path):
    body = GOOD_TABLE.replace('url = "sqlite:///{path}"', 'url = "postgresql+psycopg://nobody@127.0.0.1:1/x"')
    datamap = load_datamap(write(tmp_path, body), networks=NETWORKS)
    held = count_held(datamap, Identities(accounts=(("demo", "7"),)))
    assert held[0].rows is None
