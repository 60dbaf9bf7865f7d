"""The shared text forms: UTC instants for machines and for people, and base64url."""
from __future__ import annotations

import datetime as dt

import pytest

from app.text import b64url, b64url_decode, date_text, datetime_text, iso_utc, iso_utc_or_none

AT = dt.datetime(2027, 1, 5, 14, 30, 45, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # 09:30:45 UTC


def test_iso_utc_is_the_instant_in_utc():
    assert iso_utc(AT) == "2027-01-05T09:30:45Z"
    assert iso_utc(AT, micro=True) == "2027-01-05T09:30:45.123456Z"
    assert iso_utc_or_none(AT) == "2027-01-05T09:30:45Z" and iso_utc_or_none(None) is None


@pytest.mark.parametrize("style, text", [("long", "5 January 2027"), ("short", "5 Jan 2027"),
                                         ("weekday", "Tue 5 Jan 2027")])
def test_dates_for_people(style, text):
    assert date_text(AT, style) == text
    assert date_text(AT.date(), style) == text
    assert date_text(None, style) == ""


@pytest.mark.parametrize("style, text", [("long", "5 January 2027, 09:30 UTC"), ("short", "5 Jan 2027, 09:30 UTC"),
                                         ("seconds", "5 Jan 2027, 09:30:45 UTC")])
def test_times_for_people_are_in_utc(style, text):
    assert datetime_text(AT, style) == text
    assert datetime_text(None, style) == ""


@pytest.mark.parametrize("data", [b"", b"\x00", b"ab", b"\xfb\xff\xfe", bytes(range(64))])
def test_base64url_has_no_padding_and_round_trips(data):
    text = b64url(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data

