"""Jinja filters for times, so that every page writes a date one way: `|date`, `|datetime` and `|iso`.

    {{ grant.granted_at|datetime }}           5 January 2027, 09:30 UTC
    {{ row.since|date }}                      5 January 2027
    {{ row.requested_at|datetime("short") }}  5 Jan 2027, 09:30 UTC (see app.text for the styles)
    <time datetime="{{ row.since|iso }}">     2027-01-05T09:30:00Z, or 2027-01-05 for a calendar date
"""
from __future__ import annotations

import datetime as dt

from flask import Flask

from app.text import counted, date_text, datetime_text, iso_utc


def iso(at: dt.date | None) -> str:
    """A time as ISO 8601 in UTC, to the second; a calendar date as YYYY-MM-DD; "" for none."""
    if at is None:
        return ""
    return iso_utc(at) if isinstance(at, dt.datetime) else at.isoformat()


def platform_of(app: Flask) -> dict:
    """Every page names the platform whose data this is, and where to ask it (`contact_href`: a link)."""
    contact = app.config.get("PLATFORM_CONTACT", "")
    href = contact if contact.startswith(("http://", "https://")) else f"mailto:{contact}" if contact else ""
    return {"platform": {"name": app.config.get("PLATFORM_NAME", "the platform"), "contact": contact,
                         "contact_href": href}}


def init_app(app: Flask) -> None:
    app.context_processor(lambda: platform_of(app))
    app.add_template_filter(date_text, "date")
    app.add_template_filter(datetime_text, "datetime")
    app.add_template_filter(iso, "iso")
    app.add_template_filter(counted, "counted")  # {{ rows|counted(category) }}: "20 posts", "1 influence score"
