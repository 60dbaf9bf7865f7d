"""Server-rendered SVG charts: readable without JavaScript, described for screen readers.

Time to complete spans seconds to weeks, so the time axis is logarithmic, with its ticks named
in words (1 second, 1 minute, 1 hour, 1 day, the deadline). Every bar carries a <title>, and the
chart a <title> and a <desc> that say in one sentence what it shows; pages also give the numbers
as a table.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from erasure.oversight.queries import DayTimings

WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 20, 48
TICKS = ((1, "1 second"), (60, "1 minute"), (3600, "1 hour"), (86400, "1 day"), (7 * 86400, "1 week"))


def duration(seconds: float | None) -> str:
    """A duration in the largest unit that keeps it readable: '42 seconds', '3.5 hours', '12 days'."""
    if seconds is None:
        return "none"
    seconds = max(0.0, float(seconds))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            value = seconds / size
            shown = f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")  # 9.96 days: "10"
            return f"{shown} {unit}{'' if shown == '1' else 's'}"
    if seconds < 1:
        return "less than 1 second"
    shown = f"{seconds:.0f}"
    return f"{shown} second{'' if shown == '1' else 's'}"


def _day_label(day) -> str:
    return f"{day.day} {day.strftime('%b')}"


def time_to_complete(days: Sequence[DayTimings], deadline_seconds: float, chart_id: str = "ttc") -> Markup:
    """Bars of the mean time to complete per day, a mark at each day's slowest, and the deadline as a line."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slowest = max((d.max_seconds or 0 for d in days), default=0)
    deadline = max([deadline_seconds] + [d.deadline_seconds or 0 for d in days])
    top = max(deadline, slowest, 60) * 1.5
    span = math.log10(top)

    def y(seconds: float) -> float:
        return TOP + plot_h * (1 - math.log10(max(seconds, 1)) / span)

    total = sum(d.completed for d in days)
    missed = sum(d.missed for d in days)
    title = f"Time to complete against the deadline, last {len(days)} days"
    if total:
        desc = (f"{total} request{'s' if total != 1 else ''} completed in the last {len(days)} days. "
                f"The slowest took {duration(slowest)}, against a deadline of {duration(deadline)}. "
                + (f"{missed} missed the deadline." if missed else "None missed the deadline."))
    else:
        desc = f"No request completed in the last {len(days)} days."
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMinYMin meet">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
    ]
    # The time axis: gridlines at named durations, and the deadline.
    for seconds, label in TICKS:
        if seconds < top / 1.2 and abs(math.log10(seconds) - math.log10(deadline)) > 0.12:
            parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(seconds):.1f}" '
                         f'y2="{y(seconds):.1f}"/>')
            parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y(seconds) + 4:.1f}" text-anchor="end">'
                         f'{escape(label)}</text>')
    parts.append(f'<line class="deadline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(deadline):.1f}" '
                 f'y2="{y(deadline):.1f}"/>')
    parts.append(f'<text class="tick deadline-label" x="{LEFT - 6}" y="{y(deadline) + 4:.1f}" text-anchor="end">'
                 f'{escape(duration(deadline))}</text>')
    parts.append(f'<text class="deadline-label" x="{WIDTH - RIGHT - 4}" y="{y(deadline) - 6:.1f}" text-anchor="end">'
                 f'Deadline: {escape(duration(deadline))}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')

    # One bar per day: the mean, with a mark at the slowest; a day with none shows no bar.
    step = plot_w / max(len(days), 1)
    bar_w = max(step * 0.6, 2)
    for n, d in enumerate(days):
        x = LEFT + n * step + (step - bar_w) / 2
        centre = x + bar_w / 2
        if d.completed:
            words = (f"{_day_label(d.day)}: {d.completed} completed, {duration(d.mean_seconds)} on average, "
                     f"the slowest {duration(d.max_seconds)}"
                     + (f"; {d.missed} missed the deadline" if d.missed else ""))
            kind = "bar missed" if d.missed else "bar"
            top_y = min(y(d.mean_seconds or 0), TOP + plot_h - 3)  # under a second still shows
            parts.append(f'<g class="{kind}"><title>{escape(words)}</title>'
                         f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{bar_w:.1f}" '
                         f'height="{TOP + plot_h - top_y:.1f}"/>'
                         f'<line class="slowest" x1="{x - 1:.1f}" x2="{x + bar_w + 1:.1f}" '
                         f'y1="{y(d.max_seconds or 0):.1f}" y2="{y(d.max_seconds or 0):.1f}"/></g>')
        if n % 5 == 0 or n == len(days) - 1:
            parts.append(f'<text class="tick" x="{centre:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">'
                         f'{escape(_day_label(d.day))}</text>')
    parts.append(f'<text class="axis-label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                 'Day completed (UTC)</text>')
    parts.append(f'<text class="axis-label" transform="translate(14 {TOP + plot_h / 2:.1f}) rotate(-90)" '
                 'text-anchor="middle">Time to complete (log scale)</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape())
