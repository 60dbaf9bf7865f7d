"""Which keys of a store named by its data (a cache's keys, a bucket's objects) no entry of the data map reaches:
what the platform began to keep under a new name ("dm:omar:17", "voice-notes/omar/1.ogg"), that purge would leave
behind while a leaver's receipt says their data is gone.

A key's name may itself name a person, so the operators' page, the logs and the metrics get counts only. The
prefixes of the keys nobody mapped ("dm:*") are kept for the operator who asks for them at the command line
(`flask datamap check --names`), who holds the store's credentials and could list its keys anyway.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from erasure.stores.kinds import Uncovered

LOOK_AT = 100_000  # keys looked at, at most: a check never walks a huge cache or bucket whole
PREFIXES_KEPT = 20  # the most common prefixes of the keys nobody mapped, for --names


def reached_by(regexes: Iterable[re.Pattern[str]]) -> re.Pattern[str]:
    """One expression for any of `regexes`: the caller fullmatches a glob's (it names whole keys) and matches a
    prefix's."""
    return re.compile("|".join(f"(?:{r.pattern})" for r in regexes) or "(?!)", re.DOTALL)


def prefix_of(key: str, separator: str) -> str:
    """The key's family, as stores name keys by custom ("dm:omar:17" is dm's, "avatars/a1/x.png" avatars'): up to
    its first separator; a key without one is its own."""
    head, found, _rest = key.partition(separator)
    return f"{head}{separator}*" if found else key


def uncovered(keys: Iterable[tuple[str, bool]], noun: str, separator: str, look_at: int = LOOK_AT) -> Uncovered:
    """Count the keys, of the first `look_at`, that were not reached: (key, reached) pairs."""
    looked, prefixes = 0, Counter[str]()
    for key, reached in keys:
        if looked == look_at:
            break
        looked += 1
        if not reached:
            prefixes[prefix_of(key, separator)] += 1
    else:
        return _found(noun, prefixes, looked, complete=True)
    return _found(noun, prefixes, looked, complete=False)


def _found(noun: str, prefixes: Counter[str], looked: int, complete: bool) -> Uncovered:
    common = tuple(sorted(prefixes.items(), key=lambda kv: (-kv[1], kv[0]))[:PREFIXES_KEPT])  # the most first
    return Uncovered(noun, sum(prefixes.values()), looked, complete, common, len(prefixes) - len(common))
