"""The pages' date filters: |date, |datetime and |iso."""
from __future__ import annotations

import datetime as dt

from flask import render_template_string

AT = dt.datetime(2027, 1, 5, 14, 30, 45, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # 09:30:45 UTC


def test_the_template_filters(app):
    with app.test_request_context():
        page = render_template_string(
            '{{ at|date }} | {{ at|datetime }} | {{ at|datetime("short") }} | {{ at|iso }} | {{ day|iso }} | '
            '{{ none|date }}{{ none|datetime }}{{ none|iso }}', at=AT, day=AT.date(), none=None)
    assert page == ("5 January 2027 | 5 January 2027, 09:30 UTC | 5 Jan 2027, 09:30 UTC | 2027-01-05T09:30:45Z | "
                    "2027-01-05 | ")
