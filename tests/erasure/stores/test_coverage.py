"""`flask datamap check`: a table the platform added and nobody mapped is named before a leaver's receipt says their
data is gone, as is a table the map names that the store lacks; and a worker warns of both when it starts."""
from __future__ import annotations

import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from sqlalchemy import text

from app.db import make_engine
from demo.platform import PLATFORM_TABLES, seed_platform_store
from erasure.stores.coverage import Watch
from tests.conftest import PLATFORM_STORE
from tests.erasure.engine.helpers_processes import wait_for
from tests.erasure.stores.helpers_coverage import assert_a_changed_platform_is_seen

LEAVER = "leaver-51@example.org"


def check(app) -> tuple[int, str]:
    ran = app.test_cli_runner().invoke(args=["datamap", "check"])
    return ran.exit_code, ran.output


def add_table(platform_url: str, sql: str) -> None:
    with sqlite3.connect(urlsplit(platform_url).path[1:]) as conn:
        conn.execute(sql)


ARCHIVE = ('[[stores]]\nname = "archive"\nurl_env = "OWNSTORY_TEST_STORE_URL"\n\n'
           '[[stores.tables]]\ntable = "old_posts"\ncategory = "archived posts"\ncolumn = "author_id"\n'
           'identity = "account"\nnetwork = "demo"\n')


def add_store(config_files, toml: str) -> None:
    with config_files["datamap"].open("a") as fh:
        fh.write("\n" + toml)


def add_to_the_store(config_files, line: str) -> None:
    path = config_files["datamap"]
    path.write_text(path.read_text().replace(PLATFORM_STORE, f"{PLATFORM_STORE}\n{line}", 1))


def test_the_shipped_map_covers_the_demo_platform(app):
    code, output = check(app)
    assert code == 0, output
    assert output == ("platform (sql): every table is in the data map or in holds_no_personal_data, and every table "
                      "and column the map names is there, indexed\n")


def test_a_table_nobody_mapped_is_named_until_it_is_mapped_or_said_to_hold_nothing_personal(
        make_app, config_files, platform_url):
    add_table(platform_url, "CREATE TABLE direct_messages (sender_id TEXT, body TEXT)")
    add_table(platform_url, "CREATE TABLE feature_flags (name TEXT PRIMARY KEY, enabled INTEGER)")
    add_table(platform_url, f"INSERT INTO direct_messages VALUES ('1002', 'write to {LEAVER}')")

    code, output = check(make_app())
    assert code == 1
    assert output == ("platform (sql): 2 tables are not in the data map: direct_messages, feature_flags. Map each "
                      "that holds anything about a person; list the others in holds_no_personal_data\n")
    assert LEAVER not in output and "1002" not in output  # names of tables, never what they hold

    add_to_the_store(config_files, 'holds_no_personal_data = ["feature_flags"]')
    code, output = check(make_app())
    assert code == 1 and "1 table is not in the data map: direct_messages." in output

    add_store(config_files, '[[stores.tables]]\ntable = "direct_messages"\ncategory = "messages"\n'
                            'column = "sender_id"\nidentity = "account"\nnetwork = "demo"\n')  # the platform's, last
    assert check(make_app())[0] == 0


def test_a_table_the_map_names_and_the_store_lacks_is_named(make_app, platform_url):
    add_table(platform_url, "DROP TABLE scores")
    code, output = check(make_app())
    assert code == 1
    assert output == ("platform (sql): 1 table is in the data map but not in the store: scores. Purging them fails "
                      "until the map or the store is mended\n")


def test_a_column_without_an_index_is_said_and_one_the_table_lacks_fails_the_check(make_app, make_person, login,
                                                                                   platform_url):
    add_table(platform_url, "DROP INDEX ix_posts_author_id")
    code, output = check(make_app())
    assert code == 0  # slower erasures, nothing left behind
    assert output == ("platform (sql): 1 column has no index that starts with it: posts.author_id. Each purge and "
                      "count of it reads the whole table\n")
    assert "Erasures there work, but slowly" in health_page(make_app(), make_person, login)

    add_table(platform_url, "ALTER TABLE mailing_list RENAME COLUMN email TO address")
    code, output = check(make_app())
    assert code == 1
    assert output.startswith("platform (sql): 1 column is in the data map but not in its table: mailing_list.email. "
                             "Purging them fails until the map or the store is mended; 1 column has no index")


def test_a_store_file_that_is_not_there_is_not_made_by_looking(make_app, config_files, tmp_path):
    gone = tmp_path / "nowhere" / "platform.db"
    path = config_files["datamap"]
    path.write_text(path.read_text().replace(str(tmp_path / "platform.db"), str(gone)))
    code, output = check(make_app())
    assert code == 1 and "5 tables are in the data map but not in the store" in output
    assert not gone.exists() and not gone.parent.exists()


def test_a_store_that_cannot_be_asked_says_so_and_the_others_are_checked(make_app, config_files, monkeypatch):
    monkeypatch.setenv("OWNSTORY_TEST_STORE_URL", "postgresql+psycopg://ownstory:hunter2@127.0.0.1:1/platform")
    add_store(config_files, ARCHIVE)
    code, output = check(make_app())
    assert code == 1
    platform, archive = output.splitlines()
    assert platform.startswith("platform (sql): every table is in the data map")
    assert archive == "archive (sql): not checked, cannot reach or use the store (OperationalError)"
    assert "hunter2" not in output and "127.0.0.1" not in output


def test_a_kind_that_cannot_list_what_it_holds_is_not_checked(make_app, config_files, monkeypatch):
    monkeypatch.setenv("OWNSTORY_TEST_BILLING_URL", "http://127.0.0.1:1/billing")  # never asked
    add_store(config_files, '[[stores]]\nname = "billing"\nkind = "http"\nendpoint_env = "OWNSTORY_TEST_BILLING_URL"\n'
                            'categories = ["invoices"]\nidentities = ["email"]\n')
    code, output = check(make_app())
    assert code == 0
    assert output.splitlines()[1] == ("billing (http): not checked, since a store of this kind cannot list what it "
                                      "holds; its entries are purged")


def test_a_worker_warns_of_a_table_nobody_mapped_when_it_starts(platform_url, start_worker):
    add_table(platform_url, "CREATE TABLE direct_messages (sender_id TEXT, body TEXT)")
    worker = start_worker()
    wait_for(lambda: "direct_messages" in worker.output, 30, "the worker's warning")
    worker.stop()
    warned = [line for line in worker.output.splitlines() if "direct_messages" in line]
    assert len(warned) == 1 and "1 table is not in the data map" in warned[0] and '"WARNING"' in warned[0]


@contextmanager
def a_platform_database(database_url: str, tmp_path) -> Iterator[str]:
    """A database of the platform's own beside Ownstory's: on PostgreSQL a schema of its own, which the store's
    connection uses, in the same database as Ownstory's tables."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'platform.db'}"
        return
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS coverage_platform CASCADE"))
        conn.execute(text("CREATE SCHEMA coverage_platform"))
    try:
        yield f"{database_url}?options=-csearch_path%3Dcoverage_platform"
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA coverage_platform CASCADE"))
        engine.dispose()


def test_a_store_lists_its_own_tables_only(database_url, tmp_path):
    """On PostgreSQL, the tables of the schema the store's connection uses: Ownstory's own, in another schema of
    the same database here, are not the store's."""
    with a_platform_database(database_url, tmp_path) as url:
        assert_a_changed_platform_is_seen(url)


def health_page(app, make_person, login) -> str:
    client = app.test_client()
    login(client, make_person(role="operator"))
    page = client.get("/operator/health")
    assert page.status_code == 200
    return re.search(r'<section aria-labelledby="datamap-h">.*?</section>', page.get_data(as_text=True), re.S).group(0)


def test_the_health_page_names_a_table_nobody_mapped(app, make_person, login, platform_url):
    assert "Every table of the SQL stores, and every key of the Redis and S3 stores, is in the data map" in health_page(
        app, make_person, login)
    add_table(platform_url, "CREATE TABLE direct_messages (sender_id TEXT, body TEXT)")
    add_table(platform_url, f"INSERT INTO direct_messages VALUES ('1002', 'write to {LEAVER}')")
    fresh = app.extensions["datamap_coverage"] = Watch(app.extensions["datamap"])  # not five minutes later
    section = health_page(app, make_person, login)
    assert ("platform (sql): 1 table is not in the data map: direct_messages. Map each that holds anything about a "
            "person; list the others in holds_no_personal_data") in section
    assert LEAVER not in section and "1002" not in section and fresh.found_at is not None


def test_the_health_page_waits_on_a_store_that_never_answers_two_seconds_at_most(make_app, config_files, make_person,
                                                                                  login, monkeypatch):
    """A store that takes the connection and never says a word (a hung server, a firewall that drops): the page
    comes back, says the check is under way, and shows the answer once there is one."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        monkeypatch.setenv("OWNSTORY_TEST_STORE_URL", f"postgresql+psycopg://ownstory@127.0.0.1:{port}/platform")
        add_store(config_files, ARCHIVE)
        app = make_app()
        started = time.monotonic()
        section = health_page(app, make_person, login)
        assert time.monotonic() - started < 15
        assert "Being checked: the stores have not answered yet." in section
    # The server goes away: the look ends, and the next view shows what it found.
    wait_for(lambda: "archive (sql): not checked" in health_page(app, make_person, login), 30, "the check's answer")


def test_ownstorys_own_tables_are_not_the_platforms_where_they_share_a_database(make_app, config_files,
                                                                               database_url):
    """A small platform keeps Ownstory in its own database: Ownstory's tables are Ownstory's to erase (the forget
    step), not the data map's to name. A table of the platform's own there still is."""
    seed_platform_store(database_url)
    path = config_files["datamap"]
    path.write_text(re.sub(r'url = "sqlite:///[^"]*"', f'url = "{database_url}"', path.read_text(), count=1))
    try:
        code, output = check(make_app())
        assert code == 0, output
        with make_engine(database_url).begin() as conn:
            conn.execute(text("CREATE TABLE direct_messages (sender_id VARCHAR(40))"))
        code, output = check(make_app())
        assert code == 1 and "1 table is not in the data map: direct_messages." in output
    finally:
        with make_engine(database_url).begin() as conn:
            for table in ("direct_messages", *PLATFORM_TABLES):
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
