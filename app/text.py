"""Text forms every package writes the same way: UTC instants for machines and for people, and base64url.

erasure/verifier/ keeps its own base64url (in owner.py): it imports nothing from the service.
"""
from __future__ import annotations

import base64
import datetime as dt

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"  # what iso_utc writes; strptime reads it back

# How people read a time on a page or in a mail. "long" is for the people whose data it is;
# "short" (and "seconds", "weekday") for operators' and auditors' tables.
DATE_STYLES = {"long": "%-d %B %Y", "short": "%-d %b %Y", "weekday": "%a %-d %b %Y"}
DATETIME_STYLES = {"long": "%-d %B %Y, %H:%M UTC", "short": "%-d %b %Y, %H:%M UTC",
                   "seconds": "%-d %b %Y, %H:%M:%S UTC"}


def iso_utc(at: dt.datetime, *, micro: bool = False) -> str:
    """"2027-01-05T09:30:00Z": the instant in UTC, to the second; with micro, to the microsecond
    ("2027-01-05T09:30:00.000000Z"), which hash chains use so that one instant always hashes the same."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else ISO_UTC)


def iso_utc_or_none(at: dt.datetime | None) -> str | None:
    """iso_utc, or None (a JSON null) for a time that has not come."""
    return iso_utc(at) if at else None


def date_text(at: dt.date | None, style: str = "long") -> str:
    """"5 January 2027" (long), "5 Jan 2027" (short), "Tue 5 Jan 2027" (weekday); "" for no date."""
    return _utc(at).strftime(DATE_STYLES[style]) if at else ""


def datetime_text(at: dt.datetime | None, style: str = "long") -> str:
    """"5 January 2027, 09:30 UTC" (long), "5 Jan 2027, 09:30 UTC" (short), "5 Jan 2027, 09:30:45 UTC"
    (seconds); "" for no time."""
    return _utc(at).strftime(DATETIME_STYLES[style]) if at else ""


def _utc(at: dt.date) -> dt.date:
    """A timezone-aware time in UTC; a calendar date (or a naive time) as it is."""
    return at.astimezone(dt.UTC) if isinstance(at, dt.datetime) and at.tzinfo is not None else at


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 4648 section 5), as JOSE and our cursors write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """The bytes of (unpadded) base64url. Raises ValueError (binascii.Error) for what is not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def counted(n: int, category: str) -> str:
    """A count of a data map category as people say it: "20 posts", "1 influence score", "1 endorsement
    received"; a category that names no plural ("profile", "mailing list") is counted in entries."""
    words = category.split()
    plural = next((i for i in range(len(words) - 1, -1, -1)
                   if len(words[i]) > 2 and words[i].endswith("s") and not words[i].endswith("ss")), None)
    if plural is None:
        return f"{n} {category} {'entry' if n == 1 else 'entries'}"
    if n == 1:
        words[plural] = words[plural][:-1]
    return f"{n} {' '.join(words)}"
