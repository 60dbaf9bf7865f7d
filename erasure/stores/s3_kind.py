"""The `s3` store kind: a person's objects under a key prefix in a bucket of any S3-compatible storage.

Purge lists every version and delete marker under the prefix (ListObjectVersions) and deletes them by version
id with DeleteObjects, at most 1,000 a call. Deleting by version id is what erases an object in a versioned
bucket (a plain delete would only hide it behind a delete marker), and it works the same in an unversioned one,
whose objects all have the version "null"; so the credentials need s3:DeleteObjectVersion, which `check()`
makes sure of at start-up. Counts are object versions that hold data: a picture replaced twice is three
pictures held. Delete markers hold none, but their keys still name the person, so purge removes them too.
Objects not laid out by person are found through an index table instead (erasure/stores/s3_index.py).
"""
from __future__ import annotations

import ipaddress
import logging
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from app.settings import ConfigError
from erasure.stores import key_coverage
from erasure.stores.config import identity_and_network, keys_nothing_personal, string
from erasure.stores.kinds import Entry, Gaps, OnBatch, StoreKind, StoreMisconfigured, StoreUnavailable
from erasure.stores.s3_index import IndexedEntry, IndexTables, load_indexed

log = logging.getLogger(__name__)

PLACEHOLDER = "{identity}"
DELETE_LIMIT = 1000  # DeleteObjects takes at most 1,000 keys a call
STORE_FIELDS = {"name", "kind", "endpoint_url_env", "bucket", "access_key_env", "secret_key_env", "region", "objects",
                "indexed", "holds_no_personal_data"}
OBJECT_FIELDS = {"prefix", "category", "identity", "network"}
# Written in the file, these would put a credential (or where to send it) in a file that gets copied around.
FROM_ENVIRONMENT = {"endpoint_url": "endpoint_url_env", "access_key": "access_key_env",
                    "secret_key": "secret_key_env", "url": "endpoint_url_env"}
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's rule for bucket names
REGION = re.compile(r"^[a-z0-9-]{2,40}$")
# Answers that say "not now" rather than "never": the step retries them later.
TRANSIENT = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
             "OperationAborted", "503", "500", "502", "504"}
# Short waits and one retry: a step that finds the store down gives up quickly and retries on its own schedule.
# A connection for each of a worker's threads (erasure.engine.worker.THREADS), so none is closed on its return.
CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"total_max_attempts": 2, "mode": "standard"},
                       max_pool_connections=16, s3={"addressing_style": "path"})


@dataclass(frozen=True)
class ObjectsEntry(Entry):
    """Every object (every version) under `prefix` with the person's value in place of {identity}."""

    prefix: str

    @property
    def key(self) -> str:
        return f"{self.prefix} by {self.identity}" + (f" on {self.network}" if self.network else "")

    def prefix_for(self, value: str) -> str:
        """The person's own prefix. A value that could reach past it is refused: "a/b" would land inside
        the folder of the person whose value is "a", and a server that maps keys to paths may read ".." as
        the folder above. Escaping it instead would not find the keys the platform wrote with it."""
        if (not value or value in (".", "..") or "/" in value or "\\" in value
                or any(ord(c) < 32 or ord(c) == 127 for c in value)):
            raise StoreMisconfigured(self.store, self.key,
                                     "an identity value holds '/', '\\' or a control character, or is '.' or "
                                     "'..': it would reach beyond the person's own prefix, so its objects "
                                     "must be erased by hand")
        return self.prefix.replace(PLACEHOLDER, value)


class S3Store(StoreKind):
    """One bucket, reached with one pair of keys; a boto3 client (thread-safe) made on first use."""

    kind = "s3"

    def __init__(self, name: str, entries: tuple[ObjectsEntry | IndexedEntry, ...], *, where: str, label: str,
                 endpoint: str, bucket: str, region: str, access_key: str, secret_key: str,
                 holds_no_personal_data: tuple[str, ...] = ()) -> None:
        super().__init__(name, entries)
        self.holds_no_personal_data = holds_no_personal_data  # key prefixes someone looked at: nothing personal
        self.where, self.label = where, label  # for start-up errors, which name the file and the field
        self.bucket = bucket
        self._endpoint, self._region = endpoint, region
        self._access_key, self._secret_key = access_key, secret_key
        self._client: Any = None
        self._lock = threading.Lock()
        self._index = IndexTables(name)

    def __repr__(self) -> str:  # never the keys, nor the endpoint
        return f"<S3Store {self.name!r} bucket={self.bucket!r}>"

    @classmethod
    def load(cls, where: str, label: str, raw: Mapping[str, Any], networks: Mapping | None,
             environ: Mapping[str, str]) -> S3Store:
        for key in raw:
            if key in FROM_ENVIRONMENT:
                raise ConfigError(where, f"{label}.{key}", f"does not go in the file: name the environment "
                                                           f"variable that holds it in {FROM_ENVIRONMENT[key]}")
            if key not in STORE_FIELDS:
                raise ConfigError(where, f"{label}.{key}", "unknown field")
        name = string(where, f"{label}.name", raw.get("name"))
        endpoint = _endpoint(where, f"{label}.endpoint_url_env", _from_environment(
            where, f"{label}.endpoint_url_env", raw.get("endpoint_url_env"), environ), environ)
        bucket = string(where, f"{label}.bucket", raw.get("bucket"))
        if not BUCKET.match(bucket):
            raise ConfigError(where, f"{label}.bucket", "is not an S3 bucket name (3 to 63 characters: lower-case "
                                                        "letters, digits, dots and hyphens)")
        access_key = _from_environment(where, f"{label}.access_key_env", raw.get("access_key_env"), environ)
        secret_key = _from_environment(where, f"{label}.secret_key_env", raw.get("secret_key_env"), environ)
        region = raw.get("region", "us-east-1")
        if not isinstance(region, str) or not REGION.match(region):
            raise ConfigError(where, f"{label}.region", "must be a region name such as us-east-1")
        objects = raw.get("objects", [])
        if not isinstance(objects, list):
            raise ConfigError(where, f"{label}.objects", "must be an array of tables ([[stores.objects]])")
        indexed = raw.get("indexed", [])
        if not isinstance(indexed, list):
            raise ConfigError(where, f"{label}.indexed", "must be an array of tables ([[stores.indexed]])")
        entries: tuple[ObjectsEntry | IndexedEntry, ...] = (
            *(_objects(where, f"{label}.objects[{j}]", name, o, networks) for j, o in enumerate(objects)),
            *(load_indexed(where, f"{label}.indexed[{j}]", name, i, networks, environ) for j, i in enumerate(indexed)))
        labels = [f"{label}.objects[{j}].prefix" for j in range(len(objects))] + \
                 [f"{label}.indexed[{j}].key_column" for j in range(len(indexed))]
        keys = [e.key for e in entries]
        for j, key in enumerate(keys):
            if key in keys[:j]:
                raise ConfigError(where, labels[j], "the same objects, found the same way, appear twice: each "
                                                    "would be counted twice")
        return cls(name, entries, where=where, label=label, endpoint=endpoint, bucket=bucket, region=region,
                   access_key=access_key, secret_key=secret_key,
                   holds_no_personal_data=keys_nothing_personal(
                       where, f"{label}.holds_no_personal_data", raw.get("holds_no_personal_data", []),
                       "key prefixes", '["static/", "thumbnails/"]', "[[stores.objects]]"))

    def check(self) -> None:
        """The bucket exists, and the keys may list and delete object versions under every entry's prefix.

        The delete is of the "null" version of a key that cannot exist, so it changes nothing, yet S3 checks
        the permission first. A store that cannot be reached at start-up is not a configuration mistake: it
        is logged, and the first purge finds out (and retries) instead.
        """
        try:
            self._check()
        except StoreUnavailable:
            log.warning("store %s: could not be reached at start-up; its bucket is checked at the first purge",
                        self.name)

    def _check(self) -> None:
        try:
            with self._answers(self.bucket, "HeadBucket"):
                self._s3().head_bucket(Bucket=self.bucket)
        except StoreMisconfigured as exc:
            problem = "does not exist" if "does not exist" in exc.message else "refuses these credentials"
            raise ConfigError(self.where, f"{self.label}.bucket", f"the bucket {self.bucket!r} {problem}") from None
        versioning = self._versioning()
        for field, entry in self._fields():
            if isinstance(entry, IndexedEntry):
                try:
                    self._index.probe(entry)
                except StoreMisconfigured as exc:
                    raise ConfigError(self.where, field.replace(".key_column", ".table"), exc.message) from None
                probe = f"ownstory-check-{uuid.uuid4().hex}/"
            else:
                probe = entry.prefix.split(PLACEHOLDER)[0] + f"ownstory-check-{uuid.uuid4().hex}/"
            try:
                with self._answers(entry.key, "ListObjectVersions"):
                    self._s3().list_object_versions(Bucket=self.bucket, Prefix=probe, MaxKeys=1)
            except StoreMisconfigured:
                raise ConfigError(self.where, field, "the credentials may not list object versions here; erasing "
                                                     "needs s3:ListBucketVersions") from None
            try:
                self._delete(entry.key, [{"Key": probe + "probe", "VersionId": "null"}])
            except StoreMisconfigured:
                raise ConfigError(self.where, field, f"the credentials may not delete object versions here (bucket "
                                                     f"versioning: {versioning}); erasing needs "
                                                     f"s3:DeleteObjectVersion, or old versions would stay") from None

    def count(self, entry: Entry, values: list[str]) -> int:
        if isinstance(entry, IndexedEntry):
            return sum(len(self._versions_of(entry.key, key)[0])
                       for keys in self._index_pages(entry, values, DELETE_LIMIT) for key in keys)
        return sum(len(versions) for versions, _ in self._listing(_objects_entry(entry), values, DELETE_LIMIT))

    def purge(self, entry: Entry, values: list[str], on_batch: OnBatch | None = None,
              batch_size: int = DELETE_LIMIT) -> int:
        batch_size = max(1, min(batch_size, DELETE_LIMIT))
        if isinstance(entry, IndexedEntry):
            return self._purge_indexed(entry, values, on_batch, batch_size)
        entry = _objects_entry(entry)
        removed = 0
        for value in values:
            prefix = entry.prefix_for(value)
            seen: set[tuple[str, str]] = set()
            while True:
                # Always the first page: what the last batch listed is gone, so the next one comes up.
                versions, markers = next(self._pages(entry.key, prefix, batch_size))
                doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions + markers]
                if not doomed:
                    break
                ids = {(d["Key"], d["VersionId"]) for d in doomed}
                if ids & seen:  # deleted, yet listed again: a lock or a retention rule holds them
                    raise StoreMisconfigured(self.name, entry.key,
                                             "objects were still listed after they were deleted (object lock or "
                                             "retention?)")
                seen = ids
                self._delete(entry.key, doomed)
                removed += len(versions)
                if on_batch is not None:
                    on_batch(len(versions))
        return removed

    def export(self, entry: Entry, values: list[str], batch_size: int = 1000) -> Iterator[list[dict]]:
        size = max(1, min(batch_size, DELETE_LIMIT))
        if isinstance(entry, IndexedEntry):
            for keys in self._index_pages(entry, values, size):
                yield [_described(v) for key in keys for v in self._versions_of(entry.key, key)[0]]
            return
        for versions, _ in self._listing(_objects_entry(entry), values, size):
            if versions:
                yield [_described(v) for v in versions]

    def describe(self, entry: Entry) -> dict[str, Any]:
        contents = "each object's key, size, last change and version; not its bytes"
        if isinstance(entry, IndexedEntry):
            return {"bucket": self.bucket, "index": f"{entry.table}.{entry.key_column}", "contents": contents}
        return {"bucket": self.bucket, "prefix": _objects_entry(entry).prefix, "contents": contents}

    def dispose(self, close: bool = True) -> None:
        with self._lock:
            if self._client is not None and close:
                self._client.close()
            self._client = None
        self._index.dispose(close)

    def _purge_indexed(self, entry: IndexedEntry, values: list[str], on_batch: OnBatch | None,
                       batch_size: int) -> int:
        """Batches of keys from the index: every version of each key, then the rows that listed them."""
        removed, last = 0, None
        while keys := self._index.keys(entry, values, batch_size):
            if keys == last:  # the rows were deleted, yet read again
                raise StoreMisconfigured(self.name, entry.key, "the index rows were still there after deleting them")
            versions, doomed = 0, []
            for key in keys:
                found, markers = self._versions_of(entry.key, key)
                versions += len(found)
                doomed += [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in found + markers]
            for i in range(0, len(doomed), DELETE_LIMIT):
                self._delete(entry.key, doomed[i:i + DELETE_LIMIT])
            self._index.forget(entry, values, keys)
            removed, last = removed + versions, keys
            if on_batch is not None:
                on_batch(versions)
        return removed

    def _index_pages(self, entry: IndexedEntry, values: list[str], size: int) -> Iterator[list[str]]:
        after = None
        while keys := self._index.keys(entry, values, size, after):
            yield keys
            after = keys[-1]

    def _fields(self) -> Iterator[tuple[str, ObjectsEntry | IndexedEntry]]:
        """Each entry with the data-map field a start-up error about it names."""
        objects = indexed = 0
        for entry in self.entries:
            if isinstance(entry, IndexedEntry):
                yield f"{self.label}.indexed[{indexed}].key_column", entry
                indexed += 1
            else:
                yield f"{self.label}.objects[{objects}].prefix", _objects_entry(entry)
                objects += 1

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = _client(self._endpoint, self._region, self._access_key, self._secret_key)
            return self._client

    def gaps(self) -> Gaps:
        """The objects, of the first key_coverage.LOOK_AT keys the bucket lists (any version), under no entry's prefix,
        listed in no index table and under no prefix holds_no_personal_data lists: counted, never named."""
        reached = key_coverage.reached_by([
            *(_prefix_regex(e.prefix) for e in self.entries if isinstance(e, ObjectsEntry)),
            *(re.compile(re.escape(p)) for p in self.holds_no_personal_data)])
        found = key_coverage.uncovered(self._keys_reached(reached), "object", "/")
        return Gaps(unmapped=[], missing=[], uncovered=found)

    def _keys_reached(self, reached: re.Pattern[str]) -> Iterator[tuple[str, bool]]:
        """Each key that has a version (a delete marker holds nothing), in the bucket's order, and whether an entry
        reaches it: a page at a time, asking the index tables about the keys no prefix reaches."""
        indexed = [e for e in self.entries if isinstance(e, IndexedEntry)]
        last = None
        for versions, _markers in self._pages(self.bucket, "", DELETE_LIMIT):
            keys = [k for k in dict.fromkeys(v["Key"] for v in versions) if k != last]
            if not keys:
                continue
            last = keys[-1]
            outside = [k for k in keys if not reached.match(k)]
            listed = {k for entry in indexed for k in self._index.listed(entry, outside)} if outside else set()
            unreached = set(outside) - listed
            yield from ((k, k not in unreached) for k in keys)

    def _versioning(self) -> str:
        try:
            with self._answers(self.bucket, "GetBucketVersioning"):
                status = self._s3().get_bucket_versioning(Bucket=self.bucket).get("Status")
        except StoreMisconfigured:
            return "not known to these credentials"
        return {"Enabled": "enabled", "Suspended": "suspended"}.get(status or "", "never enabled")

    def _pages(self, where: str, prefix: str, size: int) -> Iterator[tuple[list, list]]:
        """Every page of versions and delete markers under the prefix, held one page at a time."""
        marker: dict[str, str] = {}
        while True:
            with self._answers(where, "ListObjectVersions"):
                answer = self._s3().list_object_versions(Bucket=self.bucket, Prefix=prefix, MaxKeys=size, **marker)
            yield answer.get("Versions", []), answer.get("DeleteMarkers", [])
            if not answer.get("IsTruncated"):
                return
            marker = {"KeyMarker": answer["NextKeyMarker"]}
            if answer.get("NextVersionIdMarker"):
                marker["VersionIdMarker"] = answer["NextVersionIdMarker"]

    def _listing(self, entry: ObjectsEntry, values: list[str], size: int) -> Iterator[tuple[list, list]]:
        for value in values:
            yield from self._pages(entry.key, entry.prefix_for(value), size)

    def _versions_of(self, where: str, key: str) -> tuple[list, list]:
        """The versions and delete markers of exactly this key: a key the index names is no prefix, so
        uploads/a.png.bak stays when the index lists uploads/a.png. Listing is in key order, and the key
        comes before every longer one."""
        versions: list = []
        markers: list = []
        for page_versions, page_markers in self._pages(where, key, DELETE_LIMIT):
            versions += [v for v in page_versions if v["Key"] == key]
            markers += [m for m in page_markers if m["Key"] == key]
            if any(v["Key"] != key for v in page_versions + page_markers):
                break
        return versions, markers

    def _delete(self, where: str, doomed: list[dict]) -> None:
        with self._answers(where, "DeleteObjects"):
            answer = self._s3().delete_objects(Bucket=self.bucket, Delete={"Objects": doomed, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:  # the call succeeded, some keys did not: the answer holds their codes, never their keys here
            codes = sorted({_code(e.get("Code")) for e in errors})
            failed = f"DeleteObjects left {len(errors)} of {len(doomed)} ({', '.join(codes)})"
            if set(codes) <= TRANSIENT:
                raise StoreUnavailable(self.name, f"{where!r}: {failed}; try again")
            raise StoreMisconfigured(self.name, where, f"{failed}: the credentials may not delete object versions")

    @contextmanager
    def _answers(self, where: str, operation: str) -> Iterator[None]:
        """botocore's errors as the store errors a step understands. Their messages would carry the endpoint
        and the key, which holds an identity value: only the operation and the S3 error code go through."""
        try:
            yield
        except ClientError as exc:
            code = _code(exc.response.get("Error", {}).get("Code"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if status >= 500 or code in TRANSIENT:
                raise StoreUnavailable(self.name, f"{where!r}: {operation} answered {code}; try again") from None
            if code == "NoSuchBucket" or (code == "404" and operation == "HeadBucket"):
                raise StoreMisconfigured(self.name, where, f"the bucket {self.bucket!r} does not exist") from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StoreMisconfigured(self.name, where, f"{operation}: the credentials were refused ({code})") \
                    from None
            raise StoreMisconfigured(self.name, where, f"{operation} answered {code}") from None
        except (BotoConnectionError, HTTPClientError):
            raise StoreUnavailable(self.name, f"{where!r}: {operation}: the endpoint could not be reached") from None
        except BotoCoreError as exc:
            raise StoreMisconfigured(self.name, where, f"{operation}: {type(exc).__name__}") from None


_session: Any = None
_session_lock = threading.Lock()


def _client(endpoint: str, region: str, access_key: str, secret_key: str) -> Any:
    """A client from one shared session, which reads the S3 API's description once. A session may make
    clients in one thread at a time (a client, once made, serves every thread): hence the lock."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", endpoint_url=endpoint, region_name=region, config=CLIENT_CONFIG,
                               aws_access_key_id=access_key, aws_secret_access_key=secret_key)


def _prefix_regex(prefix: str) -> re.Pattern[str]:
    """An entry's prefix with anyone's value for {identity}: a value never holds '/' (ObjectsEntry.prefix_for)."""
    before, after = prefix.split(PLACEHOLDER)
    return re.compile(f"{re.escape(before)}[^/]+{re.escape(after)}")


def _objects(where: str, label: str, store: str, raw: Any, networks: Mapping | None) -> ObjectsEntry:
    if not isinstance(raw, dict):
        raise ConfigError(where, label, "must be a table")
    for key in raw:
        if key not in OBJECT_FIELDS:
            raise ConfigError(where, f"{label}.{key}", "unknown field")
    prefix = raw.get("prefix")
    if not isinstance(prefix, str) or prefix.count(PLACEHOLDER) != 1:
        raise ConfigError(where, f"{label}.prefix", f"must hold {PLACEHOLDER} exactly once, e.g. "
                                                    f"\"avatars/{PLACEHOLDER}/\"")
    before, after = prefix.split(PLACEHOLDER)
    if not after.startswith("/"):
        # Without it, one person's prefix would cover another's: avatars/a1 covers avatars/a10.
        raise ConfigError(where, f"{label}.prefix", f"{PLACEHOLDER} must be followed by '/', so that one "
                                                    f"person's prefix never covers another's")
    if any(part in (".", "..") for part in (before + after).split("/")):
        raise ConfigError(where, f"{label}.prefix", "must not hold '.' or '..' as a part of the path")
    category = string(where, f"{label}.category", raw.get("category"))
    identity, network = identity_and_network(where, label, raw, networks)
    return ObjectsEntry(store, category, identity, network, prefix)


def _from_environment(where: str, label: str, variable: Any, environ: Mapping[str, str]) -> str:
    variable = string(where, label, variable)
    value = environ.get(variable, "").strip()
    if not value:
        raise ConfigError(where, label, f"the environment variable {variable} is not set")
    return value


def _endpoint(where: str, label: str, url: str, environ: Mapping[str, str]) -> str:
    """An http(s) URL; https in production unless the endpoint is on this machine: the requests carry the
    platform's people's data. (Production sets OWNSTORY_ENV: the defaults file says development.)"""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(where, label, "must hold an http(s) URL, e.g. https://s3.example.org")
    if parts.username or parts.password:
        raise ConfigError(where, label, "must not carry credentials: they go in access_key_env and secret_key_env")
    if parts.scheme == "http" and not _loopback(parts.hostname) \
            and environ.get("OWNSTORY_ENV") == "production":
        raise ConfigError(where, label, "must be https outside development (plain http only to this machine)")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _objects_entry(entry: Entry) -> ObjectsEntry:
    if not isinstance(entry, ObjectsEntry):
        raise TypeError(f"an s3 store holds objects entries, not {type(entry).__name__}")
    return entry


def _code(code: Any) -> str:
    """An S3 error code as it may be shown: a word, never whatever else a server put there."""
    code = str(code or "")
    return code if re.fullmatch(r"[A-Za-z0-9.]{1,60}", code) else "an unexpected error"


def _described(version: dict) -> dict:
    """What the export says of one object version: never its bytes."""
    when = version.get("LastModified")
    return {"key": version["Key"], "size": version.get("Size"), "last_modified": when.isoformat() if when else None,
            "version_id": version["VersionId"], "latest": bool(version.get("IsLatest"))}
