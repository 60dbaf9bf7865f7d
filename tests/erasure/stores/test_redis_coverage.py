"""`flask datamap check` on a cache: keys the platform began to write that no entry of the data map reaches are
counted before a leaver's receipt says their data is gone, against a real redis-server. Never named, unless the
operator asks at the command line: a key's name may name a person."""
from __future__ import annotations

import tomllib

import pytest

from app.settings import ConfigError
from erasure.oversight.metrics import collect_datamap
from erasure.stores.kinds import StoreUnavailable
from erasure.stores.redis_kind import RedisStore
from tests.erasure.stores.helpers_redis import store_of
from tests.erasure.stores.test_coverage import add_store, check

ACME = {"identity": "account", "network": "acme"}
CACHE = '''
[[stores]]
name = "cache"
kind = "redis"
url_env = "OWNSTORY_TEST_REDIS_URL"
{listed}
[[stores.keys]]
pattern = "profile:{{identity}}"
category = "cached profile"
identity = "account"
network = "demo"

[[stores.keys]]
pattern = "feed:{{identity}}:*"
index = "idx:feed:{{identity}}"
category = "feeds"
identity = "account"
network = "demo"

[[stores.members]]
key_pattern = "followers:*"
category = "follow lists"
identity = "account"
network = "demo"
'''


def fill(r) -> None:
    """What the map names, some feature flags, and what the platform began to keep without telling anyone:
    direct messages and a session key named after the person."""
    r.set("profile:1002", "{}")
    r.set("feed:1002:1", "post")
    r.sadd("idx:feed:1002", "feed:1002:1")
    r.sadd("followers:1001", "1002")
    r.set("flags:beta", "on")
    r.set("dm:omar:1", "hi")
    r.set("dm:omar:2", "there")
    r.set("dm:liz:1", "hello")
    r.set("session-omar", "x")


@pytest.fixture
def cache_map(config_files, redis_server, monkeypatch):
    monkeypatch.setenv("OWNSTORY_TEST_REDIS_URL", redis_server.url)

    def write(listed: str = "") -> None:
        add_store(config_files, CACHE.format(listed=listed))

    return write


def test_keys_nobody_mapped_are_counted_never_named_until_asked(make_app, cache_map, r):
    fill(r)
    cache_map()
    code, output = check(make_app())
    assert code == 1
    assert output.splitlines()[1] == (
        "cache (redis): 5 of its 9 keys are reached by no entry of the data map and not by "
        "holds_no_personal_data. A key's name may name a person, so none is shown here: `flask --app wsgi datamap "
        "check --names` gives their prefixes. Map each that holds anything about a person; list the others in "
        "holds_no_personal_data")
    assert "omar" not in output and "liz" not in output and "flags" not in output

    named = make_app().test_cli_runner().invoke(args=["datamap", "check", "--names"])
    assert named.exit_code == 1
    assert named.output.splitlines()[2:] == ["  dm:*  3 keys", "  flags:*  1 key", "  session-omar  1 key"]


def test_keys_listed_as_holding_nothing_personal_or_mapped_are_not_counted(make_app, cache_map, r):
    fill(r)
    cache_map('holds_no_personal_data = ["flags:*"]\n')
    code, output = check(make_app())
    assert code == 1 and "cache (redis): 4 of its 9 keys are reached by no entry" in output

    r.delete("dm:omar:1", "dm:omar:2", "dm:liz:1", "session-omar")  # the platform moved them into the map's keys
    code, output = check(make_app())
    assert code == 0, output
    assert output.splitlines()[1] == ("cache (redis): every one of its 5 keys is reached by an entry of the data map "
                                      "or by holds_no_personal_data")


def test_ownstorys_own_rate_limit_counts_are_not_the_platforms(make_app, cache_map, r, redis_server):
    """A small platform points Ownstory's rate limits at its cache: their counts are Ownstory's, not data to map."""
    fill(r)
    r.set("LIMITS:LIMITER/127.0.0.1/login/5/1/minute", 1)
    cache_map()
    assert "cache (redis): 6 of its 10 keys are reached by no entry" in check(make_app())[1]
    shared = check(make_app(ratelimit_storage_url=redis_server.url))[1]
    assert "cache (redis): 5 of its 10 keys are reached by no entry" in shared
    elsewhere = check(make_app(ratelimit_storage_url=redis_server.url.replace("/0", "/1")))[1]  # another database
    assert "cache (redis): 6 of its 10 keys are reached by no entry" in elsewhere


def test_the_health_page_and_metrics_count_them(make_app, cache_map, r, make_person, login):
    fill(r)
    cache_map()
    app = make_app()
    client = app.test_client()
    login(client, make_person(role="operator"))
    page = client.get("/operator/health").get_data(as_text=True)
    assert "cache (redis): 5 of its 9 keys are reached by no entry of the data map" in page
    assert "omar" not in page and "dm:" not in page
    samples = {(s.name, s.labels["store"], s.labels["state"]): s.value
               for family in collect_datamap(app.extensions["datamap_coverage"]) for s in family.samples}
    assert samples[("ownstory_datamap_keys", "cache", "uncovered")] == 5
    assert samples[("ownstory_datamap_keys", "cache", "looked_at")] == 9
    assert ("ownstory_datamap_tables", "cache", "unmapped") not in samples  # a cache has no tables
    assert samples[("ownstory_datamap_tables", "platform", "unmapped")] == 0


def test_a_server_that_cannot_be_asked_says_why_and_names_no_secret(redis_server, r):
    r.acl_setuser("noscan", enabled=True, passwords=["+hunter2"], keys=["*"], commands=["+@all", "-scan"])
    try:
        for url, reason in ((f"redis://noscan:hunter2@127.0.0.1:{redis_server.port}/0",
                             "the credentials in url_env may not SCAN"),
                            (f"redis://noscan:wrong@127.0.0.1:{redis_server.port}/0",
                             "the server refused the credentials in url_env"),
                            ("redis://127.0.0.1:1/0", "cannot reach the server (ConnectionError)")):
            store = store_of(url, keys=[{"pattern": "profile:{identity}", "category": "cached profile", **ACME}])
            try:
                with pytest.raises(StoreUnavailable) as raised:
                    store.gaps()
                assert raised.value.message == reason
                assert "hunter2" not in str(raised.value) and "127.0.0.1" not in str(raised.value)
            finally:
                store.dispose()
    finally:
        r.acl_deluser("noscan")


@pytest.mark.parametrize("listed, complaint", [
    ('"flags:*"', 'must be a list of key globs, e.g. ["flags:*", "jobs:*"]'),
    ('["flags:*", ""]', 'must be a list of key globs, e.g. ["flags:*", "jobs:*"]'),
    ('["dm:{identity}:*"]', "'dm:{identity}:*' holds {identity}: keys named after a person hold data about them, "
                            "and belong in [[stores.keys]]"),
])
def test_a_mistake_in_the_list_is_refused_at_start_up(listed, complaint):
    raw = tomllib.loads(f'name = "cache"\nkind = "redis"\nurl_env = "U"\nholds_no_personal_data = {listed}\n'
                        '[[keys]]\npattern = "profile:{identity}"\ncategory = "p"\nidentity = "subject"\n')
    with pytest.raises(ConfigError) as raised:
        RedisStore.load("datamap.toml", "stores[1]", raw, None, {"U": "redis://127.0.0.1:6379/0"})
    assert str(raised.value) == f"datamap.toml: stores[1].holds_no_personal_data: {complaint}"

