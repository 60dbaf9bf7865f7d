"""Counting a store's keys that no entry reaches: a huge store is looked at in part and says so, the same prefixes
go together, and --names keeps to the most common."""
from __future__ import annotations

from erasure.stores import key_coverage
from erasure.stores.coverage import Coverage, names
from erasure.stores.kinds import Gaps, Uncovered


def coverage_of(found: Uncovered, kind: str = "redis") -> Coverage:
    return Coverage("cache", kind, Gaps(unmapped=[], missing=[], uncovered=found))


def test_a_huge_store_is_looked_at_in_part_and_says_so():
    keys = [(f"dm:{n}", False) for n in range(5)] + [("profile:1", True)] * 5
    found = key_coverage.uncovered(keys, "key", ":", look_at=3)
    assert (found.count, found.looked_at, found.complete) == (3, 3, False)
    assert coverage_of(found).describe().startswith(
        "cache (redis): 3 of the first 3 keys it listed (a check looks at no more) are reached by no entry")
    whole = key_coverage.uncovered(keys, "key", ":", look_at=10)
    assert (whole.count, whole.looked_at, whole.complete) == (5, 10, True)
    assert coverage_of(whole).describe().startswith("cache (redis): 5 of its 10 keys are reached by no entry")


def test_keys_go_together_by_their_first_separator():
    keys = [("dm:omar:1", False), ("dm:liz:1", False), ("avatars/a1/x.png", False), ("omar", False),
            ("voice/omar/1.ogg", False), ("voice/liz/1.ogg", False)]
    assert key_coverage.uncovered(keys, "key", ":").prefixes == (
        ("dm:*", 2), ("avatars/a1/x.png", 1), ("omar", 1), ("voice/liz/1.ogg", 1), ("voice/omar/1.ogg", 1))
    assert key_coverage.uncovered(keys, "object", "/").prefixes == (
        ("voice/*", 2), ("avatars/*", 1), ("dm:liz:1", 1), ("dm:omar:1", 1), ("omar", 1))


def test_many_prefixes_are_cut_short():
    keys = [(f"user{n}:x", False) for n in range(key_coverage.PREFIXES_KEPT + 5)]
    lines = names(coverage_of(key_coverage.uncovered(keys, "key", ":")))
    assert len(lines) == key_coverage.PREFIXES_KEPT + 1 and lines[-1] == "  and 5 other prefixes"


def test_an_object_is_said_as_one():
    found = key_coverage.uncovered([("a/1", False)], "object", "/")
    assert "1 of its 1 object is reached by no entry" in coverage_of(found, "s3").describe()
    assert "An object's name may name a person" in coverage_of(found, "s3").describe()
    assert names(coverage_of(found, "s3")) == ["  a/*  1 object"]
