"""Text forms every package writes the same way: UTC instants."""
from __future__ import annotations

import datetime as dt


def iso_utc(at: dt.datetime, *, micro: bool = False) -> str:
    """"2027-01-05T09:30:00Z": the instant in UTC, to the second; with micro, to the microsecond
    ("2027-01-05T09:30:00.000000Z"), which hash chains use so that one instant always hashes the same."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")
