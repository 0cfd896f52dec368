"""A sparkline: a measurement's last days as a small inline SVG inside the patient's own band.

A picture, not a chart: a list of fifty patients with five measurements each would be hundreds
of Plotly figures. It is an <img> with a data: address (the Content-Security-Policy allows
``img-src data:``), drawn here from numbers only, so nothing a user typed can reach it; the value
beside it says in text what the picture shows.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from dash import html
from dash.development.base_component import Component

from core.limits import Limits

WIDTH: Final = 96
HEIGHT: Final = 26
PAD: Final = 3
_BAND: Final = "#e3f1e8"
_LINE: Final = "#2f5d7c"
_OUTSIDE: Final = "#b42318"


def sparkline(
    points: Sequence[tuple[datetime, float]],
    limits: Limits | None,
    *,
    since: datetime,
    until: datetime,
    label: str,
) -> Component | None:
    """The readings between `since` and `until` (oldest first) with the band between the
    patient's yellow limits shaded; None for fewer than two readings."""
    if len(points) < 2:
        return None
    bounds = [] if limits is None else [b for b in (limits.low, limits.high) if b is not None]
    values = [value for _, value in points]
    low, high = min(*values, *bounds), max(*values, *bounds)
    span = (high - low) or 1.0
    seconds = max((until - since).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return PAD + (WIDTH - 2 * PAD) * min(max((at - since).total_seconds() / seconds, 0), 1)

    def y(value: float) -> float:
        return PAD + (HEIGHT - 2 * PAD) * (high - value) / span

    shapes = []
    if limits is not None and bounds:
        top = y(limits.high) if limits.high is not None else 0.0
        bottom = y(limits.low) if limits.low is not None else float(HEIGHT)
        shapes.append(
            f'<rect x="0" y="{top:.1f}" width="{WIDTH}" height="{bottom - top:.1f}"'
            f' fill="{_BAND}"/>'
        )
    line = " ".join(f"{x(at):.1f},{y(value):.1f}" for at, value in points)
    shapes.append(
        f'<polyline points="{line}" fill="none" stroke="{_LINE}" stroke-width="1.5"'
        ' stroke-linejoin="round"/>'
    )
    last_at, last = points[-1]
    outside = limits is not None and (
        (limits.low is not None and last < limits.low)
        or (limits.high is not None and last > limits.high)
    )
    shapes.append(
        f'<circle cx="{x(last_at):.1f}" cy="{y(last):.1f}" r="2.5"'
        f' fill="{_OUTSIDE if outside else _LINE}"/>'
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}">{"".join(shapes)}</svg>'
    )
    source = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return html.Img(src=source, alt=label, width=WIDTH, height=HEIGHT, className="sparkline")
