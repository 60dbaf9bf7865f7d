"""The redis store kind against a real redis-server: only the person's keys, memberships and fields go, in
batches that survive a server restart; counts, export and the data map's mistakes."""
from __future__ import annotations

import json
import tomllib

import pytest

from app.settings import ConfigError
from bench.world import free_port
from erasure.stores.kinds import StoreMisconfigured, StoreUnavailable
from erasure.stores.redis_kind import FieldEntry, KeyEntry, MemberEntry, RedisStore
from tests.erasure.stores.helpers_redis import RedisServer, require_redis_server, store_of

NETWORKS = {"acme": object()}
ACME = {"identity": "account", "network": "acme"}
PROFILE = {"pattern": "profile:{identity}", "category": "cached profile", **ACME}
FEED = {"pattern": "feed:{identity}:*", "category": "feeds", **ACME}
FOLLOWERS = {"key_pattern": "followers:*", "category": "follow lists", **ACME}
SCORES = {"key_pattern": "scores:*", "category": "scores", **ACME}

MAP = """
[[stores]]
name = "cache"
kind = "redis"
url_env = "CACHE_REDIS_URL"

[[stores.keys]]
pattern = "profile:{identity}"
category = "cached profile"
identity = "account"
network = "acme"

[[stores.keys]]
pattern = "feed:{identity}:*"
category = "feeds"
identity = "account"
network = "acme"

[[stores.members]]
key_pattern = "followers:*"
category = "follow lists"
identity = "account"
network = "acme"

[[stores.fields]]
key_pattern = "scores"
category = "scores"
identity = "subject"
"""
ENVIRON = {"CACHE_REDIS_URL": "redis://127.0.0.1:6379/0"}


def load(tmp_path, body: str, environ: dict[str, str] = ENVIRON) -> RedisStore:
    path = tmp_path / "datamap.toml"
    path.write_text(body)
    raw = tomllib.loads(body)["stores"][0]
    return RedisStore.load(str(path), f"stores.{raw.get('name')}", raw, NETWORKS, environ)


# The data map's redis entries


def test_the_contract_format_loads_with_fields_of_hashes_besides(tmp_path):
    store = load(tmp_path, MAP)
    assert store.name == "cache" and store.kind == "redis"
    profile, feed, followers, scores = store.entries
    assert isinstance(profile, KeyEntry) and profile.pattern == "profile:{identity}"
    assert (profile.category, profile.identity, profile.network) == ("cached profile", "account", "acme")
    assert isinstance(feed, KeyEntry) and feed.category == "feeds"
    assert isinstance(followers, MemberEntry) and followers.key_pattern == "followers:*"
    assert isinstance(scores, FieldEntry) and (scores.identity, scores.network) == ("subject", None)
    assert len({e.key for e in store.entries}) == 4
    assert store.describe(feed) == {"pattern": "feed:{identity}:*"}
    indexed = load(tmp_path, MAP.replace('"feed:{identity}:*"', '"feed:{identity}:*"\nindex = "idx:feed:{identity}"'))
    assert indexed.entries[1].index == "idx:feed:{identity}"
    assert indexed.describe(indexed.entries[1]) == {"pattern": "feed:{identity}:*", "index": "idx:feed:{identity}"}
    assert store.describe(followers) == {"key_pattern": "followers:*", "holds": "members"}
    assert "6379" not in repr(store)


@pytest.mark.parametrize("change, field", [
    (('pattern = "profile:{identity}"', 'pattern = "profile"'), "stores.cache.keys[0].pattern"),
    (('pattern = "profile:{identity}"', 'pattern = "*:{identity}"'), "stores.cache.keys[0].pattern"),
    (('pattern = "feed:{identity}:*"', 'pattern = "feed:{identity}*"'), "stores.cache.keys[1].pattern"),
    (('key_pattern = "followers:*"', 'key_pattern = "followers:{identity}"'), "stores.cache.members[0].key_pattern"),
    (('category = "feeds"', 'category = "feeds"\ncolor = "red"'), "stores.cache.keys[1].color"),
    (('kind = "redis"', 'kind = "redis"\ndb = 3'), "stores.cache.db"),
    (('identity = "account"', 'identity = "cookie"'), "stores.cache.keys[0].identity"),
    (('network = "acme"', 'network = "myspace"'), "stores.cache.keys[0].network"),
    (('identity = "subject"', 'identity = "subject"\nnetwork = "acme"'), "stores.cache.fields[0].network"),
    (('category = "scores"', 'category = ""'), "stores.cache.fields[0].category"),
    (('pattern = "feed:{identity}:*"', 'pattern = "profile:{identity}"'), "stores.cache"),
    (('pattern = "profile:{identity}"', 'pattern = "profile:{identity}"\nindex = "idx:p:{identity}"'),
     "stores.cache.keys[0].index"),
    (('pattern = "feed:{identity}:*"', 'pattern = "feed:{identity}:*"\nindex = "idx:feed"'),
     "stores.cache.keys[1].index"),
    (('pattern = "feed:{identity}:*"', 'pattern = "feed:{identity}:*"\nindex = "idx:{identity}:*"'),
     "stores.cache.keys[1].index"),
    (('key_pattern = "followers:*"', 'key_pattern = "followers:*"\nindex = "idx:{identity}"'),
     "stores.cache.members[0].index"),
])
def test_mistakes_name_the_file_the_store_and_the_field(tmp_path, change, field):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, MAP.replace(*change, 1))
    assert err.value.where == str(tmp_path / "datamap.toml")
    assert err.value.field == field
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("entries, words", [("", "at least one"), ('keys = "profile:{identity}"', "array of tables")])
def test_a_store_without_entries_or_with_a_key_that_is_no_table_is_refused(tmp_path, entries, words):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, MAP.split("[[stores.keys]]")[0] + entries)
    assert err.value.field == "stores.cache.keys" and words in err.value.problem


def test_a_url_belongs_in_the_environment_never_in_the_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, MAP.replace('url_env = "CACHE_REDIS_URL"', 'url = "redis://:hunter2@cache:6379/0"'))
    assert err.value.field == "stores.cache.url" and "url_env" in err.value.problem
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("environ, words", [
    ({}, "CACHE_REDIS_URL is not set"),
    ({"CACHE_REDIS_URL": "postgresql://app:hunter2@db/app"}, "redis://"),
    ({"CACHE_REDIS_URL": "redis://:hunter2@cache:port/0"}, "redis://"),
])
def test_the_url_env_must_hold_a_redis_url(tmp_path, environ, words):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, MAP, environ)
    assert err.value.field == "stores.cache.url_env" and words in err.value.problem
    assert "hunter2" not in str(err.value)


# Against a real server


@pytest.fixture
def cache(redis_server, r):
    store = store_of(redis_server.url, keys=[PROFILE, FEED], members=[FOLLOWERS], fields=[SCORES])
    yield store
    store.dispose()


def entry(store: RedisStore, category: str):
    return next(e for e in store.entries if e.category == category)


def seed(r) -> None:
    """Person 42, and neighbours whose ids share its digits: 4, 420 and 43."""
    r.hset("profile:42", mapping={"name": "Ada", "score": "900"})
    r.set("profile:4", "theirs")
    r.set("profile:420", "theirs")
    for n in range(250):
        r.set(f"feed:42:{n}", f"post {n}")
    r.set("feed:420:0", "theirs")
    r.set("feed:4:0", "theirs")
    r.sadd("followers:7", "42", "43")
    r.zadd("followers:8", {"42": 0.0, "43": 1.0})  # a score of 0 is still a membership
    r.sadd("followers:9", "43", "420")
    r.hset("scores:demo", mapping={"42": "900", "43": "100"})
    r.hset("scores:other", mapping={"4": "5"})


def test_purge_removes_the_persons_keys_memberships_and_fields_and_nothing_else(cache, r):
    seed(r)
    counted = {e.category: cache.count(e, ["42"]) for e in cache.entries}
    assert counted == {"cached profile": 1, "feeds": 250, "follow lists": 2, "scores": 1}

    purged = {e.category: cache.purge(e, ["42"]) for e in cache.entries}

    assert purged == counted
    assert [cache.count(e, ["42"]) for e in cache.entries] == [0, 0, 0, 0]
    assert [cache.purge(e, ["42"]) for e in cache.entries] == [0, 0, 0, 0]  # a rerun finds nothing more
    assert r.exists("profile:4", "profile:420", "feed:420:0", "feed:4:0") == 4
    assert r.smembers("followers:7") == {b"43"} and r.smembers("followers:9") == {b"43", b"420"}
    assert r.zrange("followers:8", 0, -1) == [b"43"]
    assert r.hgetall("scores:demo") == {b"43": b"100"} and r.hgetall("scores:other") == {b"4": b"5"}


def test_purge_scans_and_unlinks_never_keys_or_del(cache, r):
    # KEYS walks the whole database in one command, and DEL frees big values inline: both stall a busy cache.
    seed(r)
    for e in cache.entries:
        cache.purge(e, ["42"])
    used = r.info("commandstats")
    assert "cmdstat_scan" in used and "cmdstat_unlink" in used
    assert "cmdstat_keys" not in used and "cmdstat_del" not in used


def test_purge_goes_in_batches_and_counts_every_value_of_the_person(cache, r):
    seed(r)
    batches: list[int] = []
    assert cache.purge(entry(cache, "feeds"), ["42"], on_batch=batches.append, batch_size=100) == 250
    assert batches == [100, 100, 50]
    r.sadd("followers:10", "42", "43")
    assert cache.count(entry(cache, "follow lists"), ["42", "43"]) == 7  # two accounts on acme: each membership
    assert cache.purge(entry(cache, "follow lists"), ["42", "43"]) == 7


def test_export_gives_each_key_with_its_value_in_bounded_batches(cache, r):
    r.set("feed:42:text", "hello")
    r.set("feed:42:bytes", b"\xff\x00")
    r.hset("feed:42:hash", mapping={"title": "Hi"})
    r.rpush("feed:42:list", "b", "a")
    r.sadd("feed:42:set", "y", "x")
    r.zadd("feed:42:zset", {"m": 2.5})
    r.set("feed:43:text", "not theirs")

    batches = list(cache.export(entry(cache, "feeds"), ["42"], batch_size=4))

    assert [len(b) for b in sorted(batches, key=len)] == [2, 4]
    items = {item["key"]: item for batch in batches for item in batch}
    assert items == {
        "feed:42:text": {"key": "feed:42:text", "type": "string", "value": "hello"},
        "feed:42:bytes": {"key": "feed:42:bytes", "type": "string", "value": "\\xff\x00"},
        "feed:42:hash": {"key": "feed:42:hash", "type": "hash", "value": {"title": "Hi"}},
        "feed:42:list": {"key": "feed:42:list", "type": "list", "value": ["b", "a"]},
        "feed:42:set": {"key": "feed:42:set", "type": "set", "value": ["x", "y"]},
        "feed:42:zset": {"key": "feed:42:zset", "type": "zset", "value": [["m", 2.5]]},
    }
    json.dumps(batches)
    assert r.exists(*items) == 6  # an export leaves everything in place


def test_export_says_which_keys_hold_the_person_as_member_or_field(cache, r):
    seed(r)
    members = [item for batch in cache.export(entry(cache, "follow lists"), ["42"]) for item in batch]
    assert sorted(members, key=lambda i: i["key"]) == [
        {"key": "followers:7", "type": "set", "member": "42"},
        {"key": "followers:8", "type": "zset", "member": "42", "score": 0.0},
    ]
    fields = [item for batch in cache.export(entry(cache, "scores"), ["42"]) for item in batch]
    assert fields == [{"key": "scores:demo", "type": "hash", "field": "42", "value": "900"}]
    assert list(cache.export(entry(cache, "scores"), [])) == []


@pytest.mark.parametrize("value, neighbour", [("4*", "42"), ("4?", "42"), ("[34]", "3"), ("4\\", "4")])
def test_a_value_with_glob_characters_matches_only_itself(cache, r, value, neighbour):
    r.set(f"feed:{value}:0", "mine")
    r.set(f"feed:{neighbour}:0", "theirs")
    r.set(f"profile:{value}", "mine")
    r.set(f"profile:{neighbour}", "theirs")

    assert cache.count(entry(cache, "feeds"), [value]) == 1
    assert cache.purge(entry(cache, "feeds"), [value]) == 1
    assert cache.purge(entry(cache, "cached profile"), [value]) == 1

    assert r.exists(f"feed:{value}:0", f"profile:{value}") == 0
    assert r.exists(f"feed:{neighbour}:0", f"profile:{neighbour}") == 2


def test_a_members_pattern_that_reaches_a_list_is_a_mistake_in_the_map(cache, r):
    # Skipping the list would leave the person in it while verify counted 0.
    r.sadd("followers:7", "42")
    r.rpush("followers:latest", "42")
    with pytest.raises(StoreMisconfigured) as err:
        cache.purge(entry(cache, "follow lists"), ["42"])
    assert "list" in err.value.message and "narrow" in err.value.message
    assert "42" not in str(err.value)


def test_an_unreachable_server_is_unavailable_without_naming_it():
    port = free_port()
    store = store_of(f"redis://:hunter2@127.0.0.1:{port}/0", keys=[FEED])
    with pytest.raises(StoreUnavailable) as err:
        store.count(store.entries[0], ["42"])
    assert str(port) not in str(err.value) and "127.0.0.1" not in str(err.value) and "hunter2" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


# A server restart mid-purge


@pytest.fixture
def persistent_server(tmp_path):
    require_redis_server()
    with RedisServer(tmp_path, persistent=True) as server:
        client = server.client()
        for start in range(0, 2500, 500):
            client.mset({f"feed:42:{n}": "post" for n in range(start, start + 500)})
            client.mset({f"feed:43:{n}": "theirs" for n in range(start, start + 500)})
        client.close()
        yield server


def test_a_purge_cut_by_a_server_crash_is_finished_by_the_rerun(persistent_server):
    store = store_of(persistent_server.url, keys=[FEED])
    feed = store.entries[0]
    assert store.count(feed, ["42"]) == 2500
    done: list[int] = []

    def crash_after_the_first_batch(n: int) -> None:
        done.append(n)
        if len(done) == 1:
            persistent_server.kill()

    with pytest.raises(StoreUnavailable) as err:
        store.purge(feed, ["42"], on_batch=crash_after_the_first_batch, batch_size=500)
    assert done == [500] and str(persistent_server.port) not in str(err.value)

    persistent_server.start()  # the append-only file brings back the state the first batch left
    rest = store.purge(feed, ["42"], batch_size=500)

    assert done[0] + rest == 2500
    assert store.count(feed, ["42"]) == 0 and store.count(feed, ["43"]) == 2500
    store.dispose()


def test_a_server_restarted_mid_purge_loses_no_key(persistent_server):
    # The client reconnects on its own, but SCAN's cursor means nothing to the new process: the
    # purge must notice the restart and scan again, or the keys the old cursor had not reached stay.
    store = store_of(persistent_server.url, keys=[FEED])
    feed = store.entries[0]
    done: list[int] = []

    def restart_after_the_first_batch(n: int) -> None:
        done.append(n)
        if len(done) == 1:
            persistent_server.restart()

    assert store.purge(feed, ["42"], on_batch=restart_after_the_first_batch, batch_size=500) == 2500
    assert sum(done) == 2500
    assert store.count(feed, ["42"]) == 0 and store.count(feed, ["43"]) == 2500
    store.dispose()


# A per-person index: the keys found without SCAN


INDEXED_FEED = {**FEED, "index": "idx:feed:{identity}"}


def seed_indexed(r, person: str, n: int) -> None:
    """A person's feed as a platform keeping the index writes it: each key and its name in one transaction."""
    for start in range(0, n, 500):
        names = [f"feed:{person}:{i}" for i in range(start, min(start + 500, n))]
        with r.pipeline(transaction=True) as pipe:
            pipe.mset(dict.fromkeys(names, "post"))
            pipe.sadd(f"idx:feed:{person}", *names)
            pipe.execute()


@pytest.fixture
def indexed(redis_server, r):
    store = store_of(redis_server.url, keys=[INDEXED_FEED])
    yield store
    store.dispose()


def test_an_indexed_purge_takes_the_keys_and_their_index_without_scanning(indexed, r):
    seed_indexed(r, "42", 250)
    seed_indexed(r, "420", 3)
    r.set("feed:4:0", "theirs, unindexed")
    feed = indexed.entries[0]
    assert indexed.count(feed, ["42"]) == 250
    r.config_resetstat()

    batches: list[int] = []
    assert indexed.purge(feed, ["42"], on_batch=batches.append, batch_size=100) == 250

    assert batches == [100, 100, 50]
    assert indexed.count(feed, ["42"]) == 0 and indexed.purge(feed, ["42"]) == 0
    used = r.info("commandstats")
    assert "cmdstat_scan" not in used and "cmdstat_keys" not in used  # the keyspace was never walked
    assert "cmdstat_sscan" in used and "cmdstat_unlink" in used
    assert r.exists("idx:feed:42") == 0 and not r.keys("feed:42:*")
    assert indexed.count(feed, ["420"]) == 3 and r.exists("feed:4:0", "feed:420:0") == 2


def test_verify_counts_a_name_the_index_still_lists_even_if_its_key_expired(indexed, r):
    # The name holds the person's identity: until a purge removes it, the person is not gone.
    seed_indexed(r, "42", 3)
    r.delete("feed:42:1")  # expired, say
    feed = indexed.entries[0]
    assert indexed.count(feed, ["42"]) == 3
    assert sorted(i["key"] for batch in indexed.export(feed, ["42"]) for i in batch) == ["feed:42:0", "feed:42:2"]
    assert indexed.purge(feed, ["42"]) == 3
    assert indexed.count(feed, ["42"]) == 0 and r.exists("idx:feed:42") == 0


def test_a_name_in_the_index_outside_the_pattern_is_left_alone(indexed, r):
    # A platform's mistake in one person's index never deletes another person's key.
    seed_indexed(r, "42", 2)
    r.set("feed:43:0", "theirs")
    r.set("profile:42", "not a feed")
    r.sadd("idx:feed:42", "feed:43:0", "profile:42")
    feed = indexed.entries[0]

    assert indexed.count(feed, ["42"]) == 2
    assert indexed.purge(feed, ["42"]) == 2
    assert r.exists("feed:43:0", "profile:42") == 2
    assert r.smembers("idx:feed:42") == {b"feed:43:0", b"profile:42"}


@pytest.mark.parametrize("value, neighbour", [("4*", "42"), ("[34]", "3")])
def test_an_indexed_value_with_glob_characters_matches_only_itself(indexed, r, value, neighbour):
    seed_indexed(r, value, 2)
    r.sadd(f"idx:feed:{value}", f"feed:{neighbour}:0")  # a wrong name: the value's own glob must not reach it
    r.set(f"feed:{neighbour}:0", "theirs")
    assert indexed.purge(indexed.entries[0], [value]) == 2
    assert r.exists(f"feed:{neighbour}:0") == 1


def test_an_indexed_purge_cut_by_a_server_crash_is_finished_by_the_rerun(tmp_path):
    require_redis_server()
    with RedisServer(tmp_path, persistent=True) as server:
        client = server.client()
        seed_indexed(client, "42", 2500)
        seed_indexed(client, "43", 10)
        store = store_of(server.url, keys=[INDEXED_FEED])
        feed = store.entries[0]
        done: list[int] = []

        def crash_after_the_first_batch(n: int) -> None:
            done.append(n)
            if len(done) == 1:
                server.kill()

        with pytest.raises(StoreUnavailable):
            store.purge(feed, ["42"], on_batch=crash_after_the_first_batch, batch_size=500)
        server.start()
        rest = store.purge(feed, ["42"], batch_size=500)

        assert done[0] + rest == 2500  # each key and its name went together: none counted twice, none missed
        assert store.count(feed, ["42"]) == 0 and client.exists("idx:feed:42") == 0
        assert not client.keys("feed:42:*") and store.count(feed, ["43"]) == 10
        store.dispose()
        client.close()
