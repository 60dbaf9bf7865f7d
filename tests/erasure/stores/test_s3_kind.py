"""The s3 store kind against a real S3 server (SeaweedFS): counts, export, purge of every version, and faults."""
from __future__ import annotations

import logging
import sqlite3
import uuid

import pytest

from app.settings import ConfigError
from erasure.stores.coverage import Coverage
from erasure.stores.kinds import StoreMisconfigured, StoreUnavailable
from erasure.stores.s3_kind import ObjectsEntry, S3Store
from tests.erasure.stores.helpers_seaweedfs import OWNER, READER, SeaweedFS, require_weed
from tests.helpers_servers import serve

WHERE = "datamap.toml"
NETWORKS = {"acme": {}, "demo": {}}
STORE = {"name": "media", "kind": "s3", "endpoint_url_env": "MEDIA_S3_ENDPOINT", "bucket": "media",
         "access_key_env": "MEDIA_S3_KEY", "secret_key_env": "MEDIA_S3_SECRET",
         "objects": [{"prefix": "avatars/{identity}/", "category": "pictures", "identity": "account",
                      "network": "acme"}]}
ENVIRON = {"MEDIA_S3_ENDPOINT": "https://s3.example.org", "MEDIA_S3_KEY": "key-id", "MEDIA_S3_SECRET": "s3cr3t"}


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    server = SeaweedFS(require_weed(), tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(seaweedfs):
    """A fresh bucket for each test."""
    return seaweedfs.bucket(f"t-{uuid.uuid4().hex[:20]}")


@pytest.fixture
def versioned(seaweedfs):
    """A fresh bucket for each test, with versioning enabled: deleting an object keeps its versions."""
    return seaweedfs.bucket(f"v-{uuid.uuid4().hex[:20]}", versioned=True)


def load(raw=None, environ=None, **changes):
    raw = {**STORE, **changes} if raw is None else raw
    return S3Store.load(WHERE, "stores.media", raw, NETWORKS, ENVIRON if environ is None else environ)


def live(seaweedfs, bucket, keys=OWNER, **changes) -> S3Store:
    return load(environ=seaweedfs.environ(keys), bucket=bucket, **changes)


def put(seaweedfs, bucket, *keys, body=b"picture"):
    client = seaweedfs.client()
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=body)


def versions_under(seaweedfs, bucket, prefix):
    answer = seaweedfs.client().list_object_versions(Bucket=bucket, Prefix=prefix)
    return answer.get("Versions", []) + answer.get("DeleteMarkers", [])


# --- the data map: refused at start-up with one line naming the file, the store and the field ---

def test_a_good_store_loads_without_reaching_the_store():
    store = load()
    assert store.kind == "s3" and store.name == "media" and store.bucket == "media"
    (entry,) = store.entries
    assert entry == ObjectsEntry("media", "pictures", "account", "acme", "avatars/{identity}/")
    assert "s3cr3t" not in repr(store) and "key-id" not in repr(store) and "example.org" not in repr(store)


@pytest.mark.parametrize("change, field, words", [
    ({"colour": "blue"}, "stores.media.colour", "unknown field"),
    ({"access_key": "AKIA..."}, "stores.media.access_key", "access_key_env"),
    ({"secret_key": "..."}, "stores.media.secret_key", "secret_key_env"),
    ({"endpoint_url": "https://s3.example.org"}, "stores.media.endpoint_url", "endpoint_url_env"),
    ({"secret_key_env": "NOT_SET"}, "stores.media.secret_key_env", "NOT_SET is not set"),
    ({"endpoint_url_env": None}, "stores.media.endpoint_url_env", "required"),
    ({"bucket": "Media_Files"}, "stores.media.bucket", "bucket name"),
    ({"region": 5}, "stores.media.region", "region"),
    ({"objects": {"prefix": "a/{identity}/"}}, "stores.media.objects", "array"),
])
def test_a_bad_store_is_named(change, field, words):
    with pytest.raises(ConfigError) as caught:
        load(**change)
    assert caught.value.where == WHERE and caught.value.field == field and words in caught.value.problem


@pytest.mark.parametrize("change, field, words", [
    ({"prefix": "avatars/"}, "prefix", "{identity} exactly once"),
    ({"prefix": "{identity}/{identity}/"}, "prefix", "{identity} exactly once"),
    ({"prefix": "avatars/{identity}"}, "prefix", "followed by '/'"),
    ({"prefix": "avatars/{identity}.png"}, "prefix", "followed by '/'"),
    ({"prefix": "avatars/../{identity}/"}, "prefix", "'..'"),
    ({"identity": "phone"}, "identity", "subject, email, account, handle"),
    ({"network": None}, "network", "required"),
    ({"network": "elsewhere"}, "network", "not in the network catalogue"),
    ({"identity": "email"}, "network", "only account and handle"),
    ({"category": ""}, "category", "required"),
    ({"bucket": "media"}, "bucket", "unknown field"),
])
def test_a_bad_objects_entry_is_named(change, field, words):
    entry = {**STORE["objects"][0], **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load(objects=[entry])
    assert caught.value.field == f"stores.media.objects[0].{field}" and words in caught.value.problem


def test_the_same_prefix_twice_would_count_twice():
    with pytest.raises(ConfigError, match=r"objects\[1\].prefix: the same objects"):
        load(objects=[STORE["objects"][0], {**STORE["objects"][0], "category": "photos"}])


def test_plain_http_goes_only_to_this_machine_in_production():
    production = {**ENVIRON, "OWNSTORY_ENV": "production"}
    with pytest.raises(ConfigError, match="must be https outside development") as caught:
        load(environ={**production, "MEDIA_S3_ENDPOINT": "http://s3.example.org"})
    assert caught.value.field == "stores.media.endpoint_url_env"
    assert load(environ={**production, "MEDIA_S3_ENDPOINT": "http://127.0.0.1:8333"})
    assert load(environ={**ENVIRON, "OWNSTORY_ENV": "development", "MEDIA_S3_ENDPOINT": "http://minio:9000"})
    with pytest.raises(ConfigError, match="must not carry credentials") as caught:
        load(environ={**ENVIRON, "MEDIA_S3_ENDPOINT": "https://key:secret@s3.example.org"})
    assert "secret" not in str(caught.value).replace("secret_key_env", "")


# --- check(): what needs the store itself, at start-up ---

def test_a_bucket_that_does_not_exist_is_refused_at_start_up(seaweedfs):
    with pytest.raises(ConfigError) as caught:
        live(seaweedfs, "no-such-bucket").check()
    assert caught.value.field == "stores.media.bucket" and "'no-such-bucket' does not exist" in caught.value.problem


def test_keys_that_cannot_delete_versions_are_refused_at_start_up(seaweedfs, versioned):
    bucket = versioned
    with pytest.raises(ConfigError) as caught:
        live(seaweedfs, bucket, keys=READER).check()
    assert caught.value.field == "stores.media.objects[0].prefix"
    assert "may not delete object versions" in caught.value.problem and "versioning: enabled" in caught.value.problem
    live(seaweedfs, bucket).check()  # the owner's keys may
    assert versions_under(seaweedfs, bucket, "avatars/") == []  # and the probe left nothing behind


def test_wrong_keys_are_refused_at_start_up(seaweedfs, bucket):
    with pytest.raises(ConfigError, match="refuses these credentials"):
        live(seaweedfs, bucket, keys=("unknown", "wrong")).check()


def test_a_store_down_at_start_up_is_logged_not_refused(seaweedfs, caplog):
    store = load(environ={**seaweedfs.environ(), "MEDIA_S3_ENDPOINT": "http://127.0.0.1:9"})
    with caplog.at_level(logging.WARNING):
        store.check()
    assert "could not be reached at start-up" in caplog.text


# --- count, purge, export ---

def test_purge_deletes_only_the_persons_objects_in_batches(seaweedfs, bucket):
    mine = [f"avatars/a1/{i:02}.png" for i in range(25)]
    put(seaweedfs, bucket, *mine, "avatars/a10/0.png", "avatars/a2/0.png", "covers/a1/0.png")
    store = live(seaweedfs, bucket)
    (entry,) = store.entries
    assert store.count(entry, ["a1"]) == 25
    batches: list[int] = []
    assert store.purge(entry, ["a1"], on_batch=batches.append, batch_size=10) == 25
    assert batches == [10, 10, 5]
    assert store.count(entry, ["a1"]) == 0
    left = sorted(o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert left == ["avatars/a10/0.png", "avatars/a2/0.png", "covers/a1/0.png"]  # a10 is not a1's
    assert store.purge(entry, ["a1"]) == 0  # a rerun finds nothing left


def test_purge_takes_every_value_the_person_has(seaweedfs, bucket):
    put(seaweedfs, bucket, "avatars/a1/x.png", "avatars/a2/y.png", "avatars/a2/z.png", "avatars/a3/w.png")
    store = live(seaweedfs, bucket)
    (entry,) = store.entries
    assert store.count_many([(entry, ["a1", "a2"]), (entry, [])]) == [3, 0]
    assert store.purge(entry, ["a1", "a2"]) == 3
    assert store.count(entry, ["a1", "a2", "a3"]) == 1


def test_in_a_versioned_bucket_every_version_and_delete_marker_goes(seaweedfs, versioned):
    bucket = versioned
    client = seaweedfs.client()
    for body in (b"first", b"second", b"third"):
        client.put_object(Bucket=bucket, Key="avatars/a1/me.png", Body=body)
    client.put_object(Bucket=bucket, Key="avatars/a1/old.png", Body=b"old")
    client.delete_object(Bucket=bucket, Key="avatars/a1/old.png")  # hidden behind a marker, still held
    put(seaweedfs, bucket, "avatars/a2/me.png")
    store = live(seaweedfs, bucket)
    (entry,) = store.entries
    assert store.count(entry, ["a1"]) == 4  # three pictures and a hidden one: all held
    batches: list[int] = []
    assert store.purge(entry, ["a1"], on_batch=batches.append, batch_size=2) == 4
    assert sum(batches) == 4
    assert versions_under(seaweedfs, bucket, "avatars/a1/") == []  # no version, no marker naming the person
    assert store.count(entry, ["a1"]) == 0
    assert [v["Key"] for v in versions_under(seaweedfs, bucket, "avatars/")] == ["avatars/a2/me.png"]


def test_export_lists_each_version_held_in_bounded_batches(seaweedfs, versioned):
    bucket = versioned
    client = seaweedfs.client()
    client.put_object(Bucket=bucket, Key="avatars/a1/me.png", Body=b"one")
    client.put_object(Bucket=bucket, Key="avatars/a1/me.png", Body=b"three")
    put(seaweedfs, bucket, *(f"avatars/a1/{i}.png" for i in range(3)), "avatars/a2/x.png")
    store = live(seaweedfs, bucket)
    (entry,) = store.entries
    batches = list(store.export(entry, ["a1"], batch_size=2))
    assert all(len(b) <= 2 for b in batches)
    rows = [row for b in batches for row in b]
    assert sorted(r["key"] for r in rows) == ["avatars/a1/0.png", "avatars/a1/1.png", "avatars/a1/2.png",
                                              "avatars/a1/me.png", "avatars/a1/me.png"]
    mine = sorted((r for r in rows if r["key"].endswith("me.png")), key=lambda r: r["size"])
    assert [(r["size"], r["latest"]) for r in mine] == [(3, False), (5, True)]
    assert all(r["version_id"] and r["last_modified"] for r in rows)
    assert store.describe(entry) == {"bucket": bucket, "prefix": "avatars/{identity}/",
                                     "contents": "each object's key, size, last change and version; not its bytes"}


@pytest.mark.parametrize("value", ["a/b", "..", ".", "a\\b", "", "a\nb"])
def test_a_value_that_would_widen_the_prefix_is_refused(seaweedfs, bucket, value):
    put(seaweedfs, bucket, "avatars/a/b/x.png", "avatars/x.png")
    store = live(seaweedfs, bucket)
    (entry,) = store.entries
    for call in (lambda: store.purge(entry, [value]), lambda: store.count(entry, [value]),
                 lambda: list(store.export(entry, [value]))):
        with pytest.raises(StoreMisconfigured, match="beyond the person's own prefix") as caught:
            call()
        assert "a/b" not in str(caught.value)
    assert len(versions_under(seaweedfs, bucket, "avatars/")) == 2  # nobody else's objects went


# --- faults: a retry completes exactly once, with counts that add up ---

def test_a_connection_cut_mid_purge_is_retried_and_the_counts_add_up(seaweedfs, bucket):
    put(seaweedfs, bucket, *(f"avatars/a1/{i:02}.png" for i in range(35)), "avatars/a2/0.png")
    store = live(seaweedfs, bucket)
    (entry,) = store.entries
    held = store.count(entry, ["a1"])  # what the step records before it purges
    first_run: list[int] = []

    def cut(n: int) -> None:
        first_run.append(n)
        if len(first_run) == 2:
            seaweedfs.stop()  # between two batches: the third one finds the store gone

    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.purge(entry, ["a1"], on_batch=cut, batch_size=10)
        assert "127.0.0.1" not in str(caught.value) and "a1" not in str(caught.value)
        assert first_run == [10, 10]
        with pytest.raises(StoreUnavailable):
            store.count(entry, ["a1"])
        with pytest.raises(StoreUnavailable):  # down at the start of a purge: nothing done, nothing counted
            store.purge(entry, ["a1"], on_batch=first_run.append, batch_size=10)
    finally:
        seaweedfs.start()
    second_run = store.purge(entry, ["a1"], batch_size=10)
    assert sum(first_run) + second_run == held == 35
    assert store.count(entry, ["a1"]) == 0
    assert store.count(entry, ["a2"]) == 1


def test_store_errors_name_neither_the_host_nor_the_keys(seaweedfs, bucket):
    put(seaweedfs, bucket, "avatars/a1/x.png")
    wrong = live(seaweedfs, bucket, keys=(OWNER[0], "not-the-secret"))
    (entry,) = wrong.entries
    with pytest.raises(StoreMisconfigured, match="credentials were refused") as caught:
        wrong.purge(entry, ["a1"])
    gone = live(seaweedfs, "bucket-gone")
    with pytest.raises(StoreMisconfigured, match="does not exist") as gone_caught:
        gone.count(entry, ["a1"])
    for message in (str(caught.value), str(gone_caught.value)):
        assert "not-the-secret" not in message and OWNER[0] not in message and str(seaweedfs.s3) not in message
        assert "a1" not in message.replace("{identity}", "")
    assert live(seaweedfs, bucket).count(entry, ["a1"]) == 1


def answering(status: str, code: str):
    """A WSGI app that answers every request with one S3 error."""
    def app(environ, start_response):
        body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>no</Message></Error>".encode()
        start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]
    return app


@pytest.mark.parametrize("status, code, error", [
    ("503 Service Unavailable", "SlowDown", StoreUnavailable),
    ("500 Internal Server Error", "InternalError", StoreUnavailable),
    ("403 Forbidden", "AccessDenied", StoreMisconfigured),
    ("404 Not Found", "NoSuchBucket", StoreMisconfigured),
])
def test_a_5xx_is_retried_later_and_a_refusal_is_a_mistake(status, code, error):
    with serve(answering(status, code)) as server:
        store = load(environ={**ENVIRON, "MEDIA_S3_ENDPOINT": server.url})
        (entry,) = store.entries
        with pytest.raises(error) as caught:
            store.purge(entry, ["a1"])
    assert code in str(caught.value) or "does not exist" in str(caught.value)
    assert str(server.port) not in str(caught.value) and "a1" not in str(caught.value)


# --- objects found through an index table ---

INDEXED = {"index_url_env": "UPLOADS_DATABASE_URL", "table": "uploads", "column": "owner_id",
           "key_column": "object_key", "category": "uploads", "identity": "account", "network": "acme"}


@pytest.fixture
def index(tmp_path):
    """A platform's index of uploads: which object key belongs to whom, in a SQLite file."""
    path = tmp_path / "platform.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE uploads (id INTEGER PRIMARY KEY, owner_id TEXT NOT NULL, object_key TEXT)")
    return path


def indexed_store(seaweedfs, bucket, index, **changes):
    environ = {**seaweedfs.environ(), "UPLOADS_DATABASE_URL": f"sqlite:///{index}"}
    return load(environ=environ, bucket=bucket, objects=[], indexed=[{**INDEXED, **changes}])


def rows_of(index):
    with sqlite3.connect(index) as db:
        return sorted(db.execute("SELECT owner_id, object_key FROM uploads").fetchall())


@pytest.mark.parametrize("change, field, words", [
    ({"index_url": "sqlite:///x.db"}, "index_url", "exactly one of index_url and index_url_env"),
    ({"index_url_env": "UNSET"}, "index_url_env", "UNSET is not set"),
    ({"table": "uploads; drop"}, "table", "not a plain table or column name"),
    ({"key_column": "owner_id"}, "key_column", "must differ from column"),
    ({"prefix": "a/{identity}/"}, "prefix", "unknown field"),
    ({"network": "elsewhere"}, "network", "not in the network catalogue"),
])
def test_a_bad_indexed_entry_is_named(change, field, words):
    environ = {**ENVIRON, "UPLOADS_DATABASE_URL": "sqlite:///uploads.db"}
    with pytest.raises(ConfigError) as caught:
        load(environ=environ, indexed=[{**INDEXED, **change}])
    assert caught.value.field == f"stores.media.indexed[0].{field}" and words in caught.value.problem


def test_objects_found_through_an_index_go_with_their_rows(seaweedfs, versioned, index):
    client = seaweedfs.client()
    for body in (b"one", b"two"):
        client.put_object(Bucket=versioned, Key="uploads/x2.png", Body=body)
    put(seaweedfs, versioned, "uploads/x1.png", "uploads/x1.png.bak", "uploads/y.png")
    with sqlite3.connect(index) as db:
        db.executemany("INSERT INTO uploads (owner_id, object_key) VALUES (?, ?)",
                       [("a1", "uploads/x1.png"), ("a1", "uploads/x2.png"), ("a1", "uploads/gone.png"),
                        ("a1", None), ("a2", "uploads/y.png")])
    store = indexed_store(seaweedfs, versioned, index)
    (entry,) = store.entries
    store.check()
    assert store.count(entry, ["a1"]) == 3  # x1, and both versions of x2
    exported = [row for batch in store.export(entry, ["a1"], batch_size=1) for row in batch]
    assert sorted(r["key"] for r in exported) == ["uploads/x1.png", "uploads/x2.png", "uploads/x2.png"]
    batches: list[int] = []
    assert store.purge(entry, ["a1"], on_batch=batches.append, batch_size=2) == 3
    assert sum(batches) == 3 and len(batches) == 2
    assert store.count(entry, ["a1"]) == 0 and store.purge(entry, ["a1"]) == 0
    left = sorted(v["Key"] for v in versions_under(seaweedfs, versioned, "uploads/"))
    assert left == ["uploads/x1.png.bak", "uploads/y.png"]  # a key the index names is not a prefix
    assert rows_of(index) == [("a1", None), ("a2", "uploads/y.png")]  # a row naming no object names nothing
    assert store.describe(entry)["index"] == "uploads.object_key"


def test_an_index_table_that_is_missing_is_refused_at_start_up(seaweedfs, bucket, index):
    with pytest.raises(ConfigError) as caught:
        indexed_store(seaweedfs, bucket, index, table="no_such_table").check()
    assert caught.value.field == "stores.media.indexed[0].table" and "missing" in caught.value.problem


# --- flask datamap check: objects no entry reaches ---

def test_objects_no_entry_reaches_are_counted_never_named(seaweedfs, versioned, index):
    """Voice notes the platform began to keep under a folder nobody mapped, and an upload its index does not list,
    are counted, each once whatever its versions; the rest is reached by a prefix, the index or the list."""
    client = seaweedfs.client()
    put(seaweedfs, versioned, "avatars/a1/x.png", "avatars/a2/y.png", "static/logo.png", "uploads/7f.png",
        "uploads/zz.png", "voice/omar/1.ogg")
    for body in (b"one", b"two"):
        client.put_object(Bucket=versioned, Key="voice/liz/1.ogg", Body=body)
    client.delete_object(Bucket=versioned, Key="voice/liz/1.ogg")  # its versions stay: still there to be found
    with sqlite3.connect(index) as db:
        db.execute("INSERT INTO uploads (owner_id, object_key) VALUES ('a1', 'uploads/7f.png')")
    environ = {**seaweedfs.environ(), "UPLOADS_DATABASE_URL": f"sqlite:///{index}"}
    store = load(environ=environ, bucket=versioned, indexed=[INDEXED])
    try:
        found = store.gaps().uncovered
        assert (found.count, found.looked_at, found.complete) == (4, 7, True)
        assert found.prefixes == (("voice/*", 2), ("static/*", 1), ("uploads/*", 1))

        listed = load(environ=environ, bucket=versioned, indexed=[INDEXED], holds_no_personal_data=["static/"])
        line = Coverage("media", "s3", listed.gaps()).describe()
        assert line.startswith("media (s3): 3 of its 7 objects are reached by no entry of the data map")
        assert "omar" not in line and "liz" not in line and "voice" not in line
        listed.dispose()
    finally:
        store.dispose()


def test_a_bucket_that_cannot_be_listed_is_not_checked(seaweedfs):
    store = load(environ=seaweedfs.environ(), bucket="no-such-bucket-here")
    with pytest.raises(StoreMisconfigured) as caught:
        store.gaps()
    assert "does not exist" in caught.value.message


@pytest.mark.parametrize("listed, complaint", [
    ("static/", 'must be a list of key prefixes, e.g. ["static/", "thumbnails/"]'),
    (["voice/{identity}/"], "'voice/{identity}/' holds {identity}: keys named after a person hold data about "
                            "them, and belong in [[stores.objects]]"),
])
def test_a_mistake_in_the_list_is_refused_at_start_up(listed, complaint):
    with pytest.raises(ConfigError) as caught:
        load(holds_no_personal_data=listed)
    assert str(caught.value) == f"datamap.toml: stores.media.holds_no_personal_data: {complaint}"
