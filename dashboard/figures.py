"""The patient's trend: one small chart per measurement, on one shared time axis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import catalog
from core.i18n import Translator
from core.limits import Limits, Severity
from core.readings import Reading
from dashboard.formatting import DISPLAY_TIMEZONE, unit_symbol

_LINE: Final = "#2f5d7c"
_LIMIT_COLOURS: Final = {Severity.YELLOW: "#8a6a00", Severity.RED: "#b42318"}
_LIMIT_DASHES: Final = {Severity.YELLOW: "dash", Severity.RED: "dot"}
_LIMIT_GROUPS: Final = {Severity.YELLOW: "limits", Severity.RED: "red-limits"}
"""Yellow and red limits differ in dash as well as colour: colour is never the only signal."""
_OUTSIDE: Final = "#b42318"
_ROW_HEIGHT: Final = 170
_GAP: Final = 48
"""Pixels between two charts, room for the lower one's title."""
_MARGIN_HEIGHT: Final = 90

# Plotly writes numbers itself: decimal comma and a non-breaking thousands space in Norwegian.
_SEPARATORS: Final = {"nb": ",\u00a0", "nn": ",\u00a0", "en": ".,"}
# Plotly's month names are English only, so Norwegian axes use numeric dates.
_TICK_FORMAT: Final = {"nb": "%d.%m", "nn": "%d.%m", "en": "%d %b"}


def _wall_clock(moment: datetime) -> datetime:
    """Oslo wall-clock time without an offset: plotly.js would drop an offset, not apply it."""
    return moment.astimezone(DISPLAY_TIMEZONE).replace(tzinfo=None)


def readings_frame(readings: list[Reading]) -> pd.DataFrame:
    """One row per reading, with the Oslo wall-clock time the charts are drawn on."""
    measured_at = pd.to_datetime([r.measured_at for r in readings], utc=True)
    return pd.DataFrame(
        {
            "code": [r.code for r in readings],
            "measured_at": measured_at,
            "local_time": measured_at.tz_convert(DISPLAY_TIMEZONE).tz_localize(None),
            "value": [r.value for r in readings],
        }
    )


def trend_figure(
    readings: list[Reading],
    limits: Sequence[Limits],
    *,
    since: datetime,
    until: datetime,
    t: Translator,
    revision: str,
) -> go.Figure | None:
    """The readings in [since, until] with the patient's yellow and red limits; None when
    there is nothing.

    While `revision` stays the same, the browser keeps the nurse's zoom and hidden traces
    across the refreshes every few seconds.
    """
    frame = readings_frame(readings)
    measurements = [m for m in catalog.MEASUREMENTS if m.code in set(frame["code"])]
    if not measurements:
        return None
    by_code = {limit.code: limit for limit in limits}
    height = _ROW_HEIGHT * len(measurements) + _MARGIN_HEIGHT
    figure = make_subplots(
        rows=len(measurements),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=_GAP / height,
        subplot_titles=[f"{m.name(t.language)} ({unit_symbol(m)})" for m in measurements],
    )
    window = [_wall_clock(since), _wall_clock(max(until, frame["measured_at"].max()))]
    legend_shown: set[str] = set()

    def show_once(group: str) -> bool:
        first = group not in legend_shown
        legend_shown.add(group)
        return first

    for row, measurement in enumerate(measurements, start=1):
        series = frame[frame["code"] == measurement.code]
        unit = unit_symbol(measurement)
        value_format = f"%{{y:.{measurement.decimals}f}}\u00a0{unit}"
        hover_time = f"%{{x|{_TICK_FORMAT[t.language]} %H:%M}}"
        figure.add_trace(
            go.Scatter(
                x=series["local_time"].tolist(),
                y=series["value"].tolist(),
                mode="lines+markers",
                name=measurement.name(t.language),
                line={"color": _LINE, "width": 1.5},
                marker={"size": 5, "color": _LINE},
                hovertemplate=f"{hover_time}<br>{value_format}<extra></extra>",
                showlegend=False,
            ),
            row=row,
            col=1,
        )
        measurement_limits = by_code.get(measurement.code)
        for severity, limit, label in _limit_lines(measurement_limits, t):
            figure.add_trace(
                go.Scatter(
                    x=window,
                    y=[limit, limit],
                    mode="lines",
                    name=_limits_legend(severity, t),
                    legendgroup=_LIMIT_GROUPS[severity],
                    showlegend=show_once(_LIMIT_GROUPS[severity]),
                    line={
                        "color": _LIMIT_COLOURS[severity],
                        "width": 1.2,
                        "dash": _LIMIT_DASHES[severity],
                    },
                    hovertemplate=f"{label}: {value_format}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        outside = _outside(series["value"], measurement_limits)
        if outside.any():
            figure.add_trace(
                go.Scatter(
                    x=series.loc[outside, "local_time"].tolist(),
                    y=series.loc[outside, "value"].tolist(),
                    mode="markers",
                    name=t("Outside the limits"),
                    legendgroup="outside",
                    showlegend=show_once("outside"),
                    marker={
                        "size": 11,
                        "symbol": "diamond-open",
                        "color": _OUTSIDE,
                        "line": {"width": 2},
                    },
                    hovertemplate=f"{hover_time}<br>{value_format}<extra></extra>",
                ),
                row=row,
                col=1,
            )
    figure.update_xaxes(range=window, tickformat=_TICK_FORMAT[t.language], gridcolor="#e6e9ee")
    figure.update_yaxes(gridcolor="#e6e9ee", zeroline=False)
    figure.update_annotations(font={"size": 13}, xanchor="left", x=0)
    figure.update_layout(
        height=height,
        margin={"l": 56, "r": 16, "t": 56, "b": 32},
        separators=_SEPARATORS[t.language],
        template="plotly_white",
        font={"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12},
        uirevision=revision,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        hovermode="closest",
    )
    return figure


def _limit_lines(limits: Limits | None, t: Translator) -> list[tuple[Severity, float, str]]:
    """(severity, value, hover label) of each limit the measurement has, yellow first."""
    if limits is None:
        return []
    labels = {
        Severity.YELLOW: (t("Lower limit"), t("Upper limit")),
        Severity.RED: (t("Lower red limit"), t("Upper red limit")),
    }
    lines = []
    for severity, low, high in limits.bands():
        lower, upper = labels[severity]
        lines += [
            (severity, value, label)
            for value, label in ((low, lower), (high, upper))
            if value is not None
        ]
    return lines


def _limits_legend(severity: Severity, t: Translator) -> str:
    return t("Patient's red limits") if severity is Severity.RED else t("Patient's limits")


def _outside(values: pd.Series, limits: Limits | None) -> pd.Series:
    """Which values lie outside the yellow limits (or the red ones, where no yellow is set)."""
    outside = pd.Series(False, index=values.index)
    if limits is None:
        return outside
    low = limits.low if limits.low is not None else limits.red_low
    high = limits.high if limits.high is not None else limits.red_high
    if low is not None:
        outside |= values < low
    if high is not None:
        outside |= values > high
    return outside
