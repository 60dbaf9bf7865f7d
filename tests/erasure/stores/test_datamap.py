"""The data map: the shipped one loads, mistakes name the file and field, counts match the stores."""
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.settings import ROOT, ConfigError
from erasure.stores.datamap import Identities, count_held, load_datamap

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
    datamap = load_datamap(ROOT / "config" / "datamap.toml", networks=NETWORKS)
    assert {e.category for e in datamap.entries} >= {"posts", "profile", "endorsements"}
    received = [e for e in datamap.entries if e.category == "endorsements received"]
    assert received[0].action == "nullify" and received[0].columns == ("receiver_id",)


@pytest.mark.parametrize("change, field", [
    (('identity = "account"', 'identity = "cookie"'), "stores.platform.tables[0].identity"),
    (('network = "demo"', 'network = "myspace"'), "stores.platform.tables[0].network"),
    (('table = "posts"', 'table = "posts; DROP TABLE posts"'), "stores.platform.tables[0].table"),
    (('column = "author_id"', 'column = "author_id"\ncolor = "red"'), "stores.platform.tables[0].color"),
    (('column = "author_id"', 'column = "author_id"\naction = "nullify"'), "stores.platform.tables[0].columns"),
    (('column = "author_id"', 'column = "author_id"\nretention_days = 0'), "stores.platform.tables[0].retention_days"),
    (('url = "sqlite:///{path}"', 'url_env = "OWNSTORY_TEST_UNSET_VARIABLE"'), "stores.platform.url_env"),
    (('url = "sqlite:///{path}"', 'url = "platform.db"'), "stores.platform.url"),
    (('name = "platform"', 'name = ""'), "stores[0].name"),
])
def test_mistakes_name_the_file_and_field(tmp_path, change, field):
    path = write(tmp_path, GOOD_TABLE.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_datamap(path, networks=NETWORKS, environ={})
    assert err.value.where == str(path)
    assert err.value.field == field


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
