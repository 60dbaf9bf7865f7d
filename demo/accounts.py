"""The fixed demo accounts of Demo Social and their deterministic sample posts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class DemoAccount:
    account_id: str  # decimal string, as real networks hand out numeric ids
    handle: str
    display_name: str
    email: str


@dataclass(frozen=True)
class SamplePost:
    id: str
    author_id: str
    body: str
    created_at: datetime


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("1001", "liz", "Liz Lemon", "liz@demo.example"),
    DemoAccount("1002", "omar", "Omar Haddad", "omar@demo.example"),
    DemoAccount("1003", "mei", "Mei Chen", "mei@demo.example"),
    DemoAccount("1004", "tomas", "Tomás Novak", "tomas@demo.example"),
    DemoAccount("1005", "ada", "Ada Okafor", "ada@demo.example"),
)

_TOPICS = (
    "Trying a new sourdough recipe this weekend.",
    "The morning ride along the river was perfect.",
    "Reading about Merkle trees on the train.",
    "Our community garden finally has tomatoes.",
    "Hot take: tabs versus spaces does not matter.",
    "Went to the local library's book swap.",
    "Learning to play the ukulele, slowly.",
    "Rainy day, good coffee, long walk.",
)

# A fixed start keeps the sample data identical on every run, so seeding is repeatable.
_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def find_account(account_id: str | None) -> DemoAccount | None:
    return next((a for a in DEMO_ACCOUNTS if a.account_id == account_id), None)


def sample_posts(account: DemoAccount, count: int) -> list[SamplePost]:
    """The account's posts, newest first, the same on every call."""
    offset = sum(map(ord, account.handle))
    posts = [
        SamplePost(
            id=f"{account.account_id}-{n}",
            author_id=account.account_id,
            body=f"{_TOPICS[(offset + n) % len(_TOPICS)]} (#{n} by @{account.handle})",
            created_at=_EPOCH + timedelta(hours=7 * n, minutes=offset % 60),
        )
        for n in range(1, count + 1)
    ]
    return posts[::-1]
