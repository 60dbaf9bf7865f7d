"""Which keys of a Redis store no entry of the data map reaches: a cache the platform began to fill with something
new ("dm:omar:17"), that purge would leave behind while a leaver's receipt says their data is gone.

A key's name may itself name a person, so the operators' page, the logs and the metrics get counts only. The
prefixes of the keys nobody mapped ("dm:*") are kept for the operator who asks for them at the command line
(`flask datamap check --names`), who holds the store's credentials and could list its keys anyway.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from erasure.stores.kinds import Uncovered

LOOK_AT = 100_000  # keys looked at, at most: a check never walks a huge cache whole (SCAN, a thousand a call)
PREFIXES_KEPT = 20  # the most common prefixes of the keys nobody mapped, for --names


def reached_by(regexes: Iterable[re.Pattern[str]]) -> re.Pattern[str]:
    """One expression matching any key that one of `regexes` matches."""
    return re.compile("|".join(f"(?:{r.pattern})" for r in regexes) or "(?!)", re.DOTALL)


def prefix_of(key: str) -> str:
    """The key's family, as Redis names keys by custom ("dm:omar:17" is dm's): up to its first colon."""
    head, colon, _rest = key.partition(":")
    return f"{head}:*" if colon else key


def uncovered(keys: Iterator[str], reached: re.Pattern[str], look_at: int = LOOK_AT) -> Uncovered:
    """Count the keys, the first `look_at` of them, that `reached` does not match."""
    looked, prefixes = 0, Counter[str]()
    for key in keys:
        if looked == look_at:
            break
        looked += 1
        if not reached.fullmatch(key):
            prefixes[prefix_of(key)] += 1
    else:
        return _found(prefixes, looked, complete=True)
    return _found(prefixes, looked, complete=False)


def _found(prefixes: Counter[str], looked: int, complete: bool) -> Uncovered:
    common = tuple(sorted(prefixes.items(), key=lambda kv: (-kv[1], kv[0]))[:PREFIXES_KEPT])  # the most first
    return Uncovered("key", sum(prefixes.values()), looked, complete, common, len(prefixes) - len(common))
