"""The `redis` store kind: a person's data in Redis, as whole keys, members of sets and fields of hashes.

The data map's format is CONTRACT 4.1's, plus `[[stores.fields]]` where the contract is silent:

    [[stores]]
    name = "cache"
    kind = "redis"
    url_env = "CACHE_REDIS_URL"     # redis://, rediss:// or unix://; never in the file (it may hold a password)
    holds_no_personal_data = ["flags:*"]  # optional: keys `flask datamap check` need not count (key_coverage)

    [[stores.keys]]                 # whole keys: deleted (UNLINK)
    pattern = "feed:{identity}:*"   # wildcards only after {identity}, and never right after it
    index = "idx:feed:{identity}"   # optional: a set the platform keeps, naming the person's keys
    [[stores.members]]              # the person as a member of every matching set or sorted set: removed
    key_pattern = "followers:*"
    [[stores.fields]]               # the person as a field of every matching hash: removed (HDEL)
    key_pattern = "scores"

each with category, identity and network as tables have. A key pattern without a wildcard names its key
outright; with one, SCAN finds the keys (MATCH and COUNT, a few keys a call, never KEYS, which would stall
the server), which visits the whole keyspace for each person. `index`, where the contract is silent, names
a set per person that the platform keeps beside the keys: then the keys are found there, at a cost that
grows with the person's keys only, and no SCAN is made. The person's value goes into a pattern as it is,
its glob characters escaped, so that a value such as `4*` cannot widen the match to other people's keys.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.retry import Retry

from app.settings import ConfigError
from erasure.stores import key_coverage
from erasure.stores.config import identity_and_network, keys_nothing_personal, string
from erasure.stores.kinds import Entry, Gaps, OnBatch, StoreKind, StoreMisconfigured, StoreUnavailable

PLACEHOLDER = "{identity}"
WILDCARDS = frozenset("*?[\\")  # what makes a Redis glob match more than itself (\ escapes)
GLOB_CHARACTERS = re.compile(r"([*?\[\]\\])")
RIGHT_AFTER_PLACEHOLDER = re.compile(re.escape(PLACEHOLDER) + r"[*?\[]")
SCHEMES = ("redis://", "rediss://", "unix://")
STORE_FIELDS = {"name", "kind", "url_env", "keys", "members", "fields", "holds_no_personal_data"}
SCAN_COUNT = 1000  # slots the server visits per SCAN call: a short pause for it, few round trips for us
KEY_FIELDS = {"pattern", "index"}  # a [[stores.keys]] entry's own fields, besides category, identity and network


def escape(value: str) -> str:
    """The value as a glob that matches only itself."""
    return GLOB_CHARACTERS.sub(r"\\\1", value)


def _wild(pattern: str) -> bool:
    return any(c in WILDCARDS for c in pattern)


@dataclass(frozen=True)
class KeyEntry(Entry):
    """Whole keys about the person, named by a pattern holding {identity}: deleted."""

    pattern: str
    index: str | None = None  # a set per person, named by {identity}, listing the keys: found there, not by SCAN

    @property
    def key(self) -> str:
        return f"keys {self.pattern} by {self.identity}" + (f" on {self.network}" if self.network else "")

    def targets(self, values: list[str]) -> tuple[list[str], list[str]]:
        """(the keys named outright, the globs to SCAN for) for the person's values."""
        if _wild(self.pattern.replace(PLACEHOLDER, "")):
            return [], [self.pattern.replace(PLACEHOLDER, escape(v)) for v in values]
        return [self.pattern.replace(PLACEHOLDER, v) for v in values], []

    def indexes(self, values: list[str]) -> list[tuple[str, re.Pattern[str]]]:
        """(the index set's name, what its members must match) for each of the person's values. A member
        outside the pattern is not this entry's, whatever the platform wrote there: it is left alone."""
        assert self.index is not None
        return [(self.index.replace(PLACEHOLDER, v), glob_regex(self.pattern.replace(PLACEHOLDER, escape(v))))
                for v in values]


@dataclass(frozen=True)
class HeldEntry(Entry):
    """The person held inside keys other people share, found by key_pattern: a member, or a hash field."""

    key_pattern: str
    section: ClassVar[str]
    types: ClassVar[tuple[str, ...]]  # the Redis types the entry reaches
    reaches: ClassVar[str]  # the same, in words

    @property
    def key(self) -> str:
        return (f"{self.section} {self.key_pattern} by {self.identity}"
                + (f" on {self.network}" if self.network else ""))

    def targets(self) -> tuple[list[str], list[str]]:
        return ([], [self.key_pattern]) if _wild(self.key_pattern) else ([self.key_pattern], [])


@dataclass(frozen=True)
class MemberEntry(HeldEntry):
    """The person as a member of sets or sorted sets (a follower list): removed from each."""

    section: ClassVar[str] = "members"
    types: ClassVar[tuple[str, ...]] = ("set", "zset")
    reaches: ClassVar[str] = "sets and sorted sets"


@dataclass(frozen=True)
class FieldEntry(HeldEntry):
    """The person as a field of hashes (a score table keyed by account): the field removed from each."""

    section: ClassVar[str] = "fields"
    types: ClassVar[tuple[str, ...]] = ("hash",)
    reaches: ClassVar[str] = "hashes"


SECTIONS = {"keys": "pattern", "members": "key_pattern", "fields": "key_pattern"}  # each section's pattern field
HELD: dict[str, type[HeldEntry]] = {"members": MemberEntry, "fields": FieldEntry}


class RedisStore(StoreKind):
    """One Redis database. redis-py's client keeps a thread-safe pool, made at first use (after any fork)."""

    kind = "redis"

    def __init__(self, name: str, entries: tuple[Entry, ...], url: str,
                 holds_no_personal_data: tuple[str, ...] = ()) -> None:
        super().__init__(name, entries)
        self._url = url
        self.holds_no_personal_data = holds_no_personal_data  # globs of keys someone looked at: nothing personal
        self.ownstorys_keys: tuple[str, ...] = ()  # globs of Ownstory's own keys, where it shares the database
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RedisStore {self.name!r}>"  # never the URL: it may hold a password

    @classmethod
    def load(cls, where: str, label: str, raw: Mapping[str, Any], networks: Mapping | None,
             environ: Mapping[str, str]) -> RedisStore:
        for field in raw:
            if field == "url":
                raise ConfigError(where, f"{label}.url", "a URL may hold a password: name the environment "
                                                         "variable that holds it with url_env instead")
            if field not in STORE_FIELDS:
                raise ConfigError(where, f"{label}.{field}", "unknown field")
        name = string(where, f"{label}.name", raw.get("name"))
        variable = string(where, f"{label}.url_env", raw.get("url_env"))
        url = environ.get(variable, "").strip()
        if not url:
            raise ConfigError(where, f"{label}.url_env", f"the environment variable {variable} is not set")
        try:
            parse_url(url)  # only the form: start-up never waits for the cache
            if not url.startswith(SCHEMES):
                raise ValueError
        except ValueError:
            raise ConfigError(where, f"{label}.url_env", f"the environment variable {variable} must hold a "
                                                         "redis://, rediss:// or unix:// URL") from None
        entries: list[Entry] = []
        for section in SECTIONS:
            items = raw.get(section, [])
            if not isinstance(items, list):
                raise ConfigError(where, f"{label}.{section}", f"must be an array of tables ([[stores.{section}]])")
            entries += [_entry(where, f"{label}.{section}[{j}]", name, section, item, networks)
                        for j, item in enumerate(items)]
        if not entries:
            raise ConfigError(where, f"{label}.keys", "a redis store needs at least one [[stores.keys]], "
                                                      "[[stores.members]] or [[stores.fields]] entry")
        seen: set[str] = set()
        for entry in entries:
            if entry.key in seen:
                raise ConfigError(where, label, f"two entries are the same ({entry.key}): each would count it")
            seen.add(entry.key)
        listed = keys_nothing_personal(where, f"{label}.holds_no_personal_data", raw.get("holds_no_personal_data", []),
                                       "key globs", '["flags:*", "jobs:*"]', "[[stores.keys]]")
        return cls(name, tuple(entries), url, listed)

    @property
    def client(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                # A few quick retries ride out a blip; a longer outage is the step's to retry, later.
                self._client = redis.Redis.from_url(
                    self._url, socket_connect_timeout=5, socket_timeout=30,
                    retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))
            return self._client

    def dispose(self, close: bool = True) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and close:
            client.close()

    def gaps(self) -> Gaps:
        """The keys, of the first key_coverage.LOOK_AT, that no entry reaches and holds_no_personal_data does not
        list: counted, never named (see key_coverage)."""
        reached = key_coverage.reached_by(glob_regex(g) for g in self._globs_reached())
        try:
            keys = (_text(k) for k in self.client.scan_iter(count=SCAN_COUNT))
            found = key_coverage.uncovered(((k, bool(reached.fullmatch(k))) for k in keys), "key", ":")
        except (redis.AuthenticationError, redis.exceptions.AuthorizationError):
            raise StoreUnavailable(self.name, "the server refused the credentials in url_env") from None
        except redis.exceptions.NoPermissionError:
            raise StoreUnavailable(self.name, "the credentials in url_env may not SCAN") from None
        except redis.RedisError as exc:
            raise StoreUnavailable(self.name, f"cannot reach the server ({type(exc).__name__})") from None
        return Gaps(unmapped=[], missing=[], uncovered=found)

    def _globs_reached(self) -> Iterator[str]:
        """A glob for every key an entry reaches, whoever it is about ({identity} as `*`): an entry's keys and the
        index sets it keeps (they name the person), the shared keys that hold people; then the listed globs."""
        for entry in self.entries:
            if isinstance(entry, KeyEntry):
                yield from (g.replace(PLACEHOLDER, "*") for g in (entry.pattern, entry.index) if g)
            elif isinstance(entry, HeldEntry):
                yield entry.key_pattern
        yield from self.holds_no_personal_data
        yield from self.ownstorys_keys

    def shares_database_with(self, url: str, globs: tuple[str, ...]) -> None:
        """Ownstory keeps keys of its own (its rate limits' counts) at `url`: if that is this store's server and
        database too, they are not the platform's, and `flask datamap check` does not count them."""
        if _database_of(url) == _database_of(self._url):
            self.ownstorys_keys = globs

    def describe(self, entry: Entry) -> dict[str, Any]:
        if isinstance(entry, KeyEntry):
            return {"pattern": entry.pattern, **({"index": entry.index} if entry.index else {})}
        assert isinstance(entry, HeldEntry)
        return {"key_pattern": entry.key_pattern, "holds": entry.section}

    # Counting: what verify needs to see at 0, and My data shows.

    def count(self, entry: Entry, values: list[str]) -> int:
        if not values:
            return 0
        if isinstance(entry, KeyEntry) and entry.index:
            # Each name the index lists: the key's, if it is still there, and the name itself, which holds
            # the person's identity, until a purge takes both. Verify sees 0 only once the index is empty.
            with self._reaching(entry):
                return sum(len(names) for _, names in self._listed(entry, values, 1000))
        return sum(len(batch) for batch in self._found(entry, values, 1000, with_values=False))

    # Purging: every batch is done on the server before on_batch hears of it.

    def purge(self, entry: Entry, values: list[str], on_batch: OnBatch | None = None,
              batch_size: int = 1000) -> int:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        total = 0
        for removed in self._removed(entry, values, batch_size) if values else ():
            total += removed
            if on_batch is not None:
                on_batch(removed)  # outside the store's error handling: the caller's own errors pass unchanged
        return total

    def _removed(self, entry: Entry, values: list[str], batch_size: int) -> Iterator[int]:
        """How many items each batch removed. SCAN may yield a key twice: the server's answers count each once."""
        with self._reaching(entry):
            if isinstance(entry, KeyEntry) and entry.index:
                for index, names in self._listed(entry, values, batch_size):
                    # One transaction: a key never outlives its name in the index, where a rerun finds it.
                    pipe = self.client.pipeline(transaction=True)
                    pipe.unlink(*names)
                    pipe.srem(index, *names)
                    yield cast(int, pipe.execute()[1])
                return
            if isinstance(entry, KeyEntry):
                for keys in self._keys(*entry.targets(values), batch_size):
                    yield cast(int, self.client.unlink(*keys))
                return
            assert isinstance(entry, HeldEntry)
            for typed in self._typed_keys(entry, batch_size):
                pipe = self.client.pipeline(transaction=False)
                for key, kind in typed:
                    REMOVERS[kind](pipe, key, values)
                yield sum(pipe.execute())

    # Export: the items themselves, as JSON-ready dicts, a batch at a time.

    def export(self, entry: Entry, values: list[str], batch_size: int = 1000) -> Iterator[list[dict]]:
        if values:
            yield from self._found(entry, values, batch_size, with_values=True)

    def _found(self, entry: Entry, values: list[str], batch_size: int, with_values: bool) -> Iterator[list[dict]]:
        """The items that hold the person, in batches: their keys (and values), or where the person is a
        member or a field. Each once, though SCAN may yield a key twice: `seen` remembers the person's
        own items only, never every key a shared pattern (followers:*) matches."""
        seen: set[bytes] = set()
        with self._reaching(entry):
            if isinstance(entry, KeyEntry):
                batches = ((names for _, names in self._listed(entry, values, batch_size)) if entry.index
                           else self._keys(*entry.targets(values), batch_size))
                for keys in batches:
                    keys = [k for k in dict.fromkeys(keys) if k not in seen]
                    seen.update(keys)
                    if batch := self._whole(keys, with_values):
                        yield batch
                return
            assert isinstance(entry, HeldEntry)
            for typed in self._typed_keys(entry, batch_size):
                typed = [(k, kind) for k, kind in dict.fromkeys(typed) if k not in seen]
                seen.update(k for k, _ in typed)
                if batch := self._held(typed, values):
                    yield batch

    def _whole(self, keys: list[bytes], with_values: bool) -> list[dict]:
        """The keys that exist, with their type and, if asked, their value."""
        types = self._types(keys)
        if not with_values:
            return [{"key": _text(key), "type": kind} for key, kind in zip(keys, types, strict=True) if kind != "none"]
        pipe = self.client.pipeline(transaction=False)
        for key, kind in zip(keys, types, strict=True):
            READERS.get(kind, _no_value)(pipe, key)
        return [{"key": _text(key), "type": kind, "value": _value(kind, raw)}
                for key, kind, raw in zip(keys, types, pipe.execute(), strict=True) if kind != "none"]

    def _held(self, typed: list[tuple[bytes, str]], values: list[str]) -> list[dict]:
        """Where the person is a member (with their score in a sorted set) or a field (with its value)."""
        pipe = self.client.pipeline(transaction=False)
        for key, kind in typed:
            FINDERS[kind](pipe, key, values)
        items = []
        for (key, kind), answers in zip(typed, pipe.execute(), strict=True):
            for value, answer in zip(values, answers, strict=True):
                if kind == "set" and answer:
                    items.append({"key": _text(key), "type": kind, "member": value})
                elif kind == "zset" and answer is not None:  # a score, which may well be 0
                    items.append({"key": _text(key), "type": kind, "member": value, "score": answer})
                elif kind == "hash" and answer is not None:
                    items.append({"key": _text(key), "type": kind, "field": value, "value": _text(answer)})
        return items

    # Finding keys.

    def _keys(self, exact: list[str], globs: list[str], batch_size: int) -> Iterator[list[bytes]]:
        """Batches of keys: those named outright (whether they exist or not), then those SCAN finds."""
        yield from _chunks((k.encode() for k in exact), batch_size)
        for glob in globs:
            yield from _chunks(self._scan(glob), batch_size)

    def _scan(self, glob: str) -> Iterator[bytes]:
        """Every key matching the glob, once at least. SCAN's promise holds within one server process: if
        the server restarted mid-way (the client reconnects on its own), the cursor meant nothing to the
        new one, and the pass is done again, or keys would be missed and a purge would stop short."""
        while True:
            started = self._run_id()
            yield from self.client.scan_iter(match=glob, count=SCAN_COUNT)
            if self._run_id() == started:
                return

    def _listed(self, entry: KeyEntry, values: list[str], batch_size: int) -> Iterator[tuple[str, list[bytes]]]:
        """(index, a batch of the names it lists that the pattern matches), each name once."""
        for index, mine in entry.indexes(values):
            seen: set[bytes] = set()
            for members in _chunks(self._members(index), batch_size):
                names = [m for m in dict.fromkeys(members) if m not in seen and mine.fullmatch(_text(m))]
                seen.update(names)
                if names:
                    yield index, names

    def _members(self, index: str) -> Iterator[bytes]:
        """Every member of the index set, once at least: SSCAN, a few a call, again after a restart as _scan."""
        while True:
            started = self._run_id()
            yield from self.client.sscan_iter(index, count=SCAN_COUNT)
            if self._run_id() == started:
                return

    def _run_id(self) -> str:
        return cast(dict, self.client.info("server"))["run_id"]

    def _typed_keys(self, entry: HeldEntry, batch_size: int) -> Iterator[list[tuple[bytes, str]]]:
        """Batches of (key, type) for the keys the entry reaches; a key of another type is a mistake in the
        map, never skipped: a list holding the person would stay behind while verify saw nothing."""
        for keys in self._keys(*entry.targets(), batch_size):
            typed = []
            for key, kind in zip(keys, self._types(keys), strict=True):
                if kind in entry.types:
                    typed.append((key, kind))
                elif kind != "none":  # "none": gone since SCAN saw it, or a named key not there
                    raise StoreMisconfigured(self.name, entry.key, f"key_pattern matches a {kind} key; a "
                                             f"{entry.section} entry reaches only {entry.reaches}: narrow it")
            yield typed

    def _types(self, keys: list[bytes]) -> list[str]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        return [kind.decode() for kind in pipe.execute()]

    @contextmanager
    def _reaching(self, entry: Entry) -> Iterator[None]:
        """redis-py's errors as ours, with none of their text: a pipeline's error quotes its commands, which
        hold the person's values, and a connection error names the host."""
        try:
            yield
        except (redis.AuthenticationError, redis.exceptions.AuthorizationError):
            raise StoreMisconfigured(self.name, entry.key, "the server refused the credentials in url_env") from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(self.name, f"cannot reach the server ({type(exc).__name__})") from None
        except redis.ResponseError as exc:
            reason = ("a key the entry reaches changed type (WRONGTYPE)" if "WRONGTYPE" in str(exc)
                      else f"the server refused a command ({type(exc).__name__})")
            raise StoreMisconfigured(self.name, entry.key, reason) from None
        except redis.RedisError as exc:
            raise StoreUnavailable(self.name, f"the server failed ({type(exc).__name__})") from None


REMOVERS = {
    "set": lambda pipe, key, values: pipe.srem(key, *values),
    "zset": lambda pipe, key, values: pipe.zrem(key, *values),
    "hash": lambda pipe, key, values: pipe.hdel(key, *values),
}
FINDERS = {
    "set": lambda pipe, key, values: pipe.smismember(key, values),
    "zset": lambda pipe, key, values: pipe.zmscore(key, values),
    "hash": lambda pipe, key, values: pipe.hmget(key, values),
}
READERS = {
    "string": lambda pipe, key: pipe.get(key),
    "hash": lambda pipe, key: pipe.hgetall(key),
    "list": lambda pipe, key: pipe.lrange(key, 0, -1),
    "set": lambda pipe, key: pipe.smembers(key),
    "zset": lambda pipe, key: pipe.zrange(key, 0, -1, withscores=True),
    "stream": lambda pipe, key: pipe.xrange(key),
}


def _no_value(pipe, key: bytes) -> None:
    pipe.echo(b"")  # a module's type (or a key gone): one answer, so the pipeline's answers stay in step


def _value(kind: str, raw: Any) -> Any:
    """A value as JSON can hold it: text (undecodable bytes escaped), lists and objects."""
    if kind == "string":
        return _text(raw)
    if kind == "hash":
        return {_text(k): _text(v) for k, v in raw.items()}
    if kind == "list":
        return [_text(v) for v in raw]
    if kind == "set":
        return sorted(_text(v) for v in raw)
    if kind == "zset":
        return [[_text(member), score] for member, score in raw]
    if kind == "stream":
        return [{"id": _text(i), "fields": {_text(k): _text(v) for k, v in fields.items()}} for i, fields in raw]
    return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def glob_regex(glob: str) -> re.Pattern[str]:
    """Redis's glob (* ? [a-z] [^a] and \\ escapes) as a regular expression, to check an index's members."""
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 1
        elif c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            i += 1
            negate = i < n and glob[i] == "^"
            i += negate
            parts = []
            while i < n and glob[i] != "]":
                if glob[i] == "\\" and i + 1 < n:
                    parts.append(re.escape(glob[i + 1]))
                    i += 2
                elif i + 2 < n and glob[i + 1] == "-" and glob[i + 2] != "]":
                    low, high = sorted((glob[i], glob[i + 2]))
                    parts.append(f"{re.escape(low)}-{re.escape(high)}")
                    i += 3
                else:
                    parts.append(re.escape(glob[i]))
                    i += 1
            out.append(f"[{'^' if negate else ''}{''.join(parts)}]" if parts else ("." if negate else "(?!)"))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _chunks(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _database_of(url: str) -> tuple:
    """Where a URL's keys live: the server (host and port, or socket) and the database number; TLS and credentials
    aside. Flask-Limiter's redis+unix:// is redis-py's unix://."""
    parsed = parse_url(url.replace("redis+unix://", "unix://", 1))
    return parsed.get("host"), parsed.get("port", 6379), parsed.get("path"), int(parsed.get("db") or 0)


def _entry(where: str, label: str, store: str, section: str, raw: Any, networks: Mapping | None) -> Entry:
    if not isinstance(raw, dict):
        raise ConfigError(where, label, "must be a table")
    pattern_field = SECTIONS[section]
    own = KEY_FIELDS if section == "keys" else {pattern_field}
    for field in raw:
        if field not in {*own, "category", "identity", "network"}:
            raise ConfigError(where, f"{label}.{field}", "unknown field")
    pattern = string(where, f"{label}.{pattern_field}", raw.get(pattern_field))
    category = string(where, f"{label}.category", raw.get("category"))
    identity, network = identity_and_network(where, label, raw, networks)
    here = f"{label}.{pattern_field}"
    if section != "keys":
        if PLACEHOLDER in pattern:
            raise ConfigError(where, here, f"a {section} entry finds the person by value, not by key name; "
                                           "keys named by {identity} go in [[stores.keys]]")
        return HELD[section](store, category, identity, network, pattern)
    if PLACEHOLDER not in pattern:
        raise ConfigError(where, here, "must hold {identity}, where the person's value goes")
    if _wild(pattern[:pattern.index(PLACEHOLDER)]):
        raise ConfigError(where, here, "may hold wildcards only after {identity}")
    if RIGHT_AFTER_PLACEHOLDER.search(pattern):
        raise ConfigError(where, here, "a wildcard right after {identity} reaches other people's keys (4* matches "
                                       "42): put a separator first, as in feed:{identity}:*")
    index = None
    if "index" in raw:
        index = string(where, f"{label}.index", raw["index"])
        if not _wild(pattern.replace(PLACEHOLDER, "")):
            raise ConfigError(where, f"{label}.index", "only a pattern with a wildcard needs an index: "
                                                       "one without names its key already")
        if PLACEHOLDER not in index or _wild(index.replace(PLACEHOLDER, "")):
            raise ConfigError(where, f"{label}.index", "must name one set per person: hold {identity}, "
                                                       "and no wildcard")
    return KeyEntry(store, category, identity, network, pattern, index)
