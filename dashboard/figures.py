"""The patient's trend: one small chart per measurement, on one shared time axis."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time
from html import escape
from typing import Any, Final

import pandas as pd
import plotly.io as pio

from alerts.library.catalogue import RULES_BY_ID
from alerts.library.trends import BASELINE_DAYS, FEV1, FLOW_MIN_READINGS, PEF, WEIGHT
from core import catalog
from core.catalog import Measurement
from core.i18n import Translator
from core.limits import Limits, Severity
from core.readings import Reading
from dashboard.data.trend import Trend, TrendEvent
from dashboard.formatting import (
    DISPLAY_TIMEZONE,
    NO_VALUE,
    format_date,
    format_moment,
    format_number,
    unit_symbol,
)

_LINE: Final = "#2f5d7c"
_LIMIT_COLOURS: Final = {Severity.YELLOW: "#8a6a00", Severity.RED: "#b42318"}
_LIMIT_DASHES: Final = {Severity.YELLOW: "dash", Severity.RED: "dot"}
_LIMIT_GROUPS: Final = {Severity.YELLOW: "limits", Severity.RED: "red-limits"}
"""Yellow and red limits differ in dash as well as colour: colour is never the only signal."""
_OUTSIDE: Final = "#b42318"
_BAND_FILLS: Final = {
    Severity.YELLOW: "rgba(240, 196, 25, 0.22)",
    Severity.RED: "rgba(180, 35, 24, 0.16)",
}
_RANGE_FILL: Final = "rgba(47, 93, 124, 0.22)"
_BASELINE: Final = "#5b3f8c"
_BASELINE_FILL: Final = "rgba(91, 63, 140, 0.10)"
_EVENT_COLOURS: Final = {"red": "#b42318", "yellow": "#f0c419"}
_LINES: Final = {
    **{m.code: _LINE for m in catalog.MEASUREMENTS},
    "8462-4": "#7a4f9a",
}
"""Diastolic apart from systolic in the chart they share (its hover names it too)."""
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
FLOW_CODES: Final = frozenset({PEF, FEV1})
_BLOOD_PRESSURE: Final = tuple(m for m in catalog.MEASUREMENTS if m.code in (SYSTOLIC, DIASTOLIC))
_CHANGES_HOVER: Final = "<br>1 d: %{customdata[0]}, 3 d: %{customdata[1]}"
_EVENT_ROW_HEIGHT: Final = 50
_GRID: Final = "#e6e9ee"
_TEMPLATE: Final = pio.templates["plotly_white"].to_plotly_json()
"""The template's content: plotly.js knows no template by name."""
_ROW_HEIGHT: Final = 170
_GAP: Final = 48
"""Pixels between two charts, room for the lower one's title."""
_MARGIN_HEIGHT: Final = 90

# Plotly writes numbers itself: decimal comma and a non-breaking thousands space in Norwegian.
_SEPARATORS: Final = {"nb": ",\u00a0", "nn": ",\u00a0", "en": ".,"}
# Plotly's month names are English only, so Norwegian axes use numeric dates.
_TICK_FORMAT: Final = {"nb": "%d.%m", "nn": "%d.%m", "en": "%d %b"}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


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


def days_frame(trend: Trend) -> pd.DataFrame:
    """One row per measurement and Oslo day: readings, low, median, high, total and squares;
    from the rollup for a long range, from the readings for a short one."""
    if trend.days is not None:
        return pd.DataFrame(
            [
                (
                    d.code,
                    pd.Timestamp(d.day),
                    d.readings,
                    d.low,
                    d.median,
                    d.high,
                    d.total,
                    d.squares,
                )
                for d in trend.days
            ],
            columns=["code", "day", *_SUMMARY_COLUMNS],
        )
    readings = readings_frame(trend.readings or [])
    readings["day"] = readings["local_time"].dt.normalize()
    readings["square"] = readings["value"] ** 2
    grouped = readings.groupby(["code", "day"], as_index=False)
    return grouped.agg(
        readings=("value", "size"),
        low=("value", "min"),
        median=("value", "median"),
        high=("value", "max"),
        total=("value", "sum"),
        squares=("square", "sum"),
    )


_SUMMARY_COLUMNS: Final = ["readings", "low", "median", "high", "total", "squares"]


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: its measurements (blood pressure has two) and what it draws."""

    title: str
    measurements: tuple[Measurement, ...]


def charts(codes: set[str], t: Translator) -> list[Chart]:
    """One chart per measurement with data, in catalog order; systolic and diastolic together."""
    found = []
    for measurement in catalog.MEASUREMENTS:
        if measurement.code == DIASTOLIC or measurement.code not in codes:
            continue
        if measurement.code == SYSTOLIC:
            pressure = tuple(m for m in _BLOOD_PRESSURE if m.code in codes)
            found.append(Chart(f"{t('Blood pressure')} (mmHg)", pressure))
        else:
            title = f"{measurement.name(t.language)} ({unit_symbol(measurement)})"
            found.append(Chart(title, (measurement,)))
    if DIASTOLIC in codes and SYSTOLIC not in codes:
        found.append(Chart(f"{t('Blood pressure')} (mmHg)", _BLOOD_PRESSURE[1:]))
    return found


def trend_figure(trend: Trend, *, t: Translator, revision: str) -> dict[str, Any] | None:
    """The trend of `trend.range`, one chart per measurement, the care plan's bands behind the
    data as each version set them, alerts and notes on a row of their own; None when there
    is nothing.

    Up to a month every reading is a point; longer ranges draw each day's lowest to highest
    value as a band with its median, so a year stays readable. While `revision` stays the
    same, the browser keeps the nurse's zoom and hidden traces across the refreshes.

    The figure is plain data for plotly.js: plotly's Python objects check and copy every value
    they are given, which took longer than the rest of the page for a year of data.
    """
    days = days_frame(trend)
    since, until = _wall_clock(trend.since), _wall_clock(trend.until)
    shown_days = days[(days["day"] >= pd.Timestamp(since.date())) & (days["day"] < until)]
    readings = None
    if trend.readings is not None:
        readings = readings_frame(trend.readings)
        readings = readings[readings["local_time"] >= since]
        codes = set(readings["code"])
    else:
        codes = set(shown_days["code"])
    chart_list = charts(codes, t)
    if not chart_list:
        return None
    news2 = [(at, total) for at, total in trend.news2 if _wall_clock(at) >= since]
    scored = [t("NEWS2 partial score")] if news2 else []
    rows = len(chart_list) + len(scored) + (1 if trend.events else 0)
    height = _ROW_HEIGHT * (len(chart_list) + len(scored))
    height += (_EVENT_ROW_HEIGHT if trend.events else 0) + _MARGIN_HEIGHT
    heights = ([_EVENT_ROW_HEIGHT] if trend.events else []) + [_ROW_HEIGHT] * (
        len(chart_list) + len(scored)
    )
    titles = [
        *([t("Alerts and notes")] if trend.events else []),
        *(c.title for c in chart_list),
        *scored,
    ]
    layout = _grid(titles, heights, gap=_GAP / height)
    drawing = _Drawing(layout, t, window=(since, until), plans=_plan_times(trend))
    if trend.events:
        drawing.events(trend.events)
    first_row = 2 if trend.events else 1
    for row, chart in enumerate(chart_list, start=first_row):
        values: list[float] = []
        for measurement in chart.measurements:
            if readings is not None:
                series = readings[readings["code"] == measurement.code]
                values += series["value"].tolist()
                drawing.readings(row, measurement, series, days=days, flow_z=trend.flow_z)
            else:
                series = shown_days[shown_days["code"] == measurement.code]
                values += series["low"].tolist() + series["high"].tolist()
                drawing.summaries(row, measurement, series, days=days, flow_z=trend.flow_z)
        drawing.bands(row, chart, values)
    if news2:
        drawing.news2(rows, news2)
    for row in range(1, rows + 1):
        drawing.axis("x", row).update(
            range=[since, until], tickformat=_TICK_FORMAT[t.language], gridcolor=_GRID
        )
        drawing.axis("y", row).update(gridcolor=_GRID, zeroline=False)
    if trend.events:
        drawing.axis("y", 1).update(visible=False, range=[-1, 1], fixedrange=True)
    layout.update(
        height=height,
        margin={"l": 56, "r": 16, "t": 56, "b": 32},
        separators=_SEPARATORS[t.language],
        template=_TEMPLATE,
        font={"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12},
        uirevision=revision,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        hovermode="closest",
        shapes=drawing.shapes,
    )
    return {"data": drawing.traces, "layout": layout}


def _grid(titles: list[str], heights: list[int], *, gap: float) -> dict[str, Any]:
    """Rows of charts one above the other, `heights` in proportion, `gap` (a fraction of the
    figure) between them, sharing the bottom row's time axis, each titled at its top left:
    the layout plotly's make_subplots makes, without its objects' cost."""
    rows = len(heights)
    room = 1 - gap * (rows - 1)
    layout: dict[str, Any] = {"annotations": []}
    top = 1.0
    for row, (title, share) in enumerate(zip(titles, heights, strict=True), start=1):
        bottom = max(top - room * share / sum(heights), 0.0)
        suffix = row if row > 1 else ""
        layout[f"xaxis{suffix}"] = {"anchor": f"y{suffix}", "domain": [0.0, 1.0]}
        if row < rows:
            layout[f"xaxis{suffix}"].update(matches=f"x{rows}", showticklabels=False)
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "domain": [bottom, top]}
        layout["annotations"].append(
            {
                "text": title,
                "showarrow": False,
                "font": {"size": 13},
                "x": 0,
                "xanchor": "left",
                "xref": "paper",
                "y": top,
                "yanchor": "bottom",
                "yref": "paper",
            }
        )
        top = bottom - gap
    return layout


def _plan_times(trend: Trend) -> list[tuple[datetime | None, dict[str, Limits]]]:
    """Each plan version's start in Oslo wall-clock time (None: from the beginning) and its
    limits by code."""
    return [
        (None if p.starts is None else _wall_clock(p.starts), {lim.code: lim for lim in p.limits})
        for p in trend.plans
    ]


class _Drawing:
    """Adds one chart's traces and shapes to the figure; keeps which legend entries exist."""

    def __init__(
        self,
        layout: dict[str, Any],
        t: Translator,
        *,
        window: tuple[datetime, datetime],
        plans: list[tuple[datetime | None, dict[str, Limits]]],
    ) -> None:
        self.layout, self.t, self.window, self.plans = layout, t, window, plans
        self.traces: list[dict[str, Any]] = []
        self.shapes: list[dict[str, Any]] = []
        self.legend_shown: set[str] = set()
        self.hover_time = f"%{{x|{_TICK_FORMAT[t.language]} %H:%M}}"

    def axis(self, letter: str, row: int) -> dict[str, Any]:
        """The layout of row `row`'s x or y axis (``xaxis``, ``xaxis2``, ...)."""
        return self.layout.setdefault(f"{letter}axis{row if row > 1 else ''}", {})

    def add(self, row: int, trace: dict[str, Any]) -> None:
        """A scatter trace on row `row`'s axes."""
        suffix = row if row > 1 else ""
        axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        self.traces.append({"type": "scatter", **axes, **trace})

    def add_shape(self, row: int, **shape: Any) -> None:
        """A shape in row `row`'s data coordinates."""
        suffix = row if row > 1 else ""
        self.shapes.append({"xref": f"x{suffix}", "yref": f"y{suffix}", **shape})

    def show_once(self, group: str) -> bool:
        first = group not in self.legend_shown
        self.legend_shown.add(group)
        return first

    def segments(self) -> list[tuple[datetime, datetime, dict[str, Limits]]]:
        """(from, to, limits by code) of each plan version inside the window."""
        since, until = self.window
        found = []
        for n, (starts, limits) in enumerate(self.plans):
            ends = self.plans[n + 1][0] if n + 1 < len(self.plans) else None
            begin = since if starts is None else max(starts, since)
            end = until if ends is None else min(ends, until)
            if begin < end:
                found.append((begin, end, limits))
        return found

    def limits_at(self, code: str, times: pd.Series) -> tuple[pd.Series, pd.Series]:
        """The yellow (else red) low and high limit valid at each time, NaN where none."""
        low = pd.Series(float("nan"), index=times.index)
        high = pd.Series(float("nan"), index=times.index)
        for starts, limits in self.plans:
            limit = limits.get(code)
            at_or_after = (
                times >= starts if starts is not None else pd.Series(True, index=times.index)
            )
            for target, value in (
                (low, None if limit is None else _first_set(limit.low, limit.red_low)),
                (high, None if limit is None else _first_set(limit.high, limit.red_high)),
            ):
                target[at_or_after] = float("nan") if value is None else value
        return low, high

    def readings(
        self,
        row: int,
        measurement: Measurement,
        series: pd.DataFrame,
        *,
        days: pd.DataFrame,
        flow_z: float,
    ) -> None:
        value_format = _value_format(measurement)
        hover = f"{self.hover_time}<br>{value_format}"
        custom = None
        if measurement.code == WEIGHT:
            custom, hover = _weight_changes(series, self.t), hover + _CHANGES_HOVER
        self.add(
            row,
            {
                "x": series["local_time"].tolist(),
                "y": series["value"].tolist(),
                "customdata": custom,
                "mode": "lines+markers",
                "name": measurement.name(self.t.language),
                "line": {"color": _LINES[measurement.code], "width": 1.5},
                "marker": {"size": 5, "color": _LINES[measurement.code]},
                "hovertemplate": f"{hover}<extra>{measurement.name(self.t.language)}</extra>",
                "showlegend": False,
            },
        )
        self.outside(row, measurement, series["local_time"], series["value"])
        self.baseline(row, measurement, days, flow_z)

    def summaries(
        self,
        row: int,
        measurement: Measurement,
        series: pd.DataFrame,
        *,
        days: pd.DataFrame,
        flow_z: float,
    ) -> None:
        """Each day's lowest to highest value as a band, the median as the line."""
        t = self.t
        noon = (series["day"] + pd.Timedelta(hours=12)).tolist()
        colour = _LINES[measurement.code]
        name = measurement.name(self.t.language)
        range_name = t("Lowest to highest of the day")
        for edge, fill in (("low", "none"), ("high", "tonexty")):
            self.add(
                row,
                {
                    "x": noon,
                    "y": series[edge].tolist(),
                    "mode": "lines",
                    "line": {"width": 0, "color": colour},
                    "fill": fill,
                    "fillcolor": _RANGE_FILL,
                    "name": range_name,
                    "legendgroup": "day-range",
                    "showlegend": edge == "high" and self.show_once("day-range"),
                    "hoverinfo": "skip",
                },
            )
        value_format = _value_format(measurement)
        day_format = f"%{{x|{_TICK_FORMAT[self.t.language]}}}"
        hover = (
            f"{day_format}<br>{t('Median')} {value_format}<br>"
            f"{t('Lowest')} %{{customdata[0]}}, {t('Highest')} %{{customdata[1]}}"
            f"<br>{t('Readings')} %{{customdata[2]}}"
        )
        decimals = measurement.decimals
        custom = [
            [f"{low:.{decimals}f}", f"{high:.{decimals}f}", count]
            for low, high, count in zip(
                series["low"], series["high"], series["readings"], strict=True
            )
        ]
        if measurement.code == WEIGHT:
            changes = _weight_changes_by_day(series, days, self.t)
            custom = [[*c, *w] for c, w in zip(custom, changes, strict=True)]
            hover += _CHANGES_HOVER.replace("customdata[0]", "customdata[3]").replace(
                "customdata[1]", "customdata[4]"
            )
        self.add(
            row,
            {
                "x": noon,
                "y": series["median"].tolist(),
                "customdata": custom,
                "mode": "lines+markers",
                "name": name,
                "line": {"color": colour, "width": 1.5},
                "marker": {"size": 4, "color": colour},
                "hovertemplate": f"{hover}<extra>{name}</extra>",
                "showlegend": False,
            },
        )
        noon_times = series["day"] + pd.Timedelta(hours=12)
        extremes = pd.concat([series["low"], series["high"]], ignore_index=True)
        self.outside(row, measurement, pd.concat([noon_times] * 2, ignore_index=True), extremes)
        self.baseline(row, measurement, days, flow_z)

    def outside_mask(self, code: str, times: pd.Series, values: pd.Series) -> pd.Series:
        low, high = self.limits_at(code, times)
        return (values < low) | (values > high)

    def outside(
        self, row: int, measurement: Measurement, times: pd.Series, values: pd.Series
    ) -> None:
        """A large open diamond on each value outside the limits valid when it was measured."""
        t = self.t
        outside = self.outside_mask(measurement.code, times, values) & values.notna()
        if not outside.any():
            return
        value_format = _value_format(measurement)
        self.add(
            row,
            {
                "x": times[outside].tolist(),
                "y": values[outside].tolist(),
                "mode": "markers",
                "name": t("Outside the limits"),
                "legendgroup": "outside",
                "showlegend": self.show_once("outside"),
                "marker": {
                    "size": 11,
                    "symbol": "diamond-open",
                    "color": _OUTSIDE,
                    "line": {"width": 2},
                },
                "hovertemplate": f"{self.hover_time}<br>{value_format}<extra></extra>",
            },
        )

    def baseline(self, row: int, measurement: Measurement, days: pd.DataFrame, z: float) -> None:
        """PEF and FEV1: the band the peak-flow rule judges by, day by day: the mean of the
        seven days before, plus and minus z standard deviations (alerts/library/trends.py)."""
        t = self.t
        if measurement.code not in FLOW_CODES:
            return
        band = flow_baseline(days[days["code"] == measurement.code], z)
        band = band[(band["day"] >= pd.Timestamp(self.window[0].date()))]
        band = band[band["day"] < self.window[1]]
        if band.empty:
            return
        name = t("Personal baseline (7 days)")
        for edge, fill in (("lower", "none"), ("upper", "tonexty")):
            self.add(
                row,
                {
                    "x": band["day"].tolist(),
                    "y": band[edge].tolist(),
                    "mode": "lines",
                    "line": {"width": 1, "color": _BASELINE, "shape": "hv", "dash": "dashdot"},
                    "fill": fill,
                    "fillcolor": _BASELINE_FILL,
                    "name": name,
                    "legendgroup": "baseline",
                    "showlegend": edge == "upper" and self.show_once("baseline"),
                    "hovertemplate": f"{name}: {_value_format(measurement)}<extra></extra>",
                },
            )

    def bands(self, row: int, chart: Chart, values: list[float]) -> None:
        """Behind the data, per care plan version: yellow between the yellow and red limits,
        red beyond the red ones; the limits themselves as dashed (yellow) and dotted (red)
        lines, so colour is never the only signal."""
        segments = self.segments()
        limits = [
            segment_limits[m.code]
            for _begin, _end, segment_limits in segments
            for m in chart.measurements
            if m.code in segment_limits
        ]
        edges = [v for lim in limits for v in (lim.low, lim.high, lim.red_low, lim.red_high)]
        known = [v for v in (*values, *edges) if v is not None and not math.isnan(v)]
        if not known:
            return
        pad = max((max(known) - min(known)) * 0.1, 1.0)
        bottom, top = min(known) - pad, max(known) + pad
        self.axis("y", row)["range"] = [bottom, top]
        for begin, end, segment_limits in segments:
            for measurement in chart.measurements:
                limit = segment_limits.get(measurement.code)
                if limit is None:
                    continue
                value_format = _value_format(measurement)
                for severity, y0, y1 in _band_areas(limit, bottom, top):
                    self.add_shape(
                        row,
                        type="rect",
                        x0=begin,
                        x1=end,
                        y0=y0,
                        y1=y1,
                        name=f"{severity.value}-band",
                        layer="below",
                        line={"width": 0},
                        fillcolor=_BAND_FILLS[severity],
                    )
                for severity, value, label in _limit_lines(limit, self.t):
                    self.add(
                        row,
                        {
                            "x": [begin, end],
                            "y": [value, value],
                            "mode": "lines",
                            "name": _limits_legend(severity, self.t),
                            "legendgroup": _LIMIT_GROUPS[severity],
                            "showlegend": self.show_once(_LIMIT_GROUPS[severity]),
                            "line": {
                                "color": _LIMIT_COLOURS[severity],
                                "width": 1.2,
                                "dash": _LIMIT_DASHES[severity],
                            },
                            "hovertemplate": f"{label}: {value_format}<extra></extra>",
                        },
                    )

    def events(self, events: list[TrendEvent]) -> None:
        """Alerts (a triangle in the alert's colour) and notes (a square) on the time axis,
        with what they say on hover; a note's text is escaped, for plotly reads markup."""
        t = self.t
        for kind, symbol, group in (
            ("alert", "triangle-up", "alerts"),
            ("note", "square", "notes"),
        ):
            chosen = [e for e in events if e.kind == kind]
            if not chosen:
                continue
            self.add(
                1,
                {
                    "x": [_wall_clock(e.at) for e in chosen],
                    "y": [0] * len(chosen),
                    "mode": "markers",
                    "name": t("Alert") if kind == "alert" else t("Note"),
                    "legendgroup": group,
                    "showlegend": False,
                    "marker": {
                        "size": 12,
                        "symbol": symbol,
                        "color": [_EVENT_COLOURS.get(e.severity, _LINE) for e in chosen],
                        "line": {"width": 1, "color": "#1f2933"},
                    },
                    "hovertext": [self.event_text(e) for e in chosen],
                    "hovertemplate": f"{self.hover_time}<br>%{{hovertext}}<extra></extra>",
                },
            )

    def news2(self, row: int, scores: list[tuple[datetime, int]]) -> None:
        """The partial NEWS2 score as a step line, with the levels where it turns yellow (5)
        and red (7) dashed and named, so the line reads without colour."""
        t = self.t
        top = max(8, max(total for _, total in scores) + 1)
        for level, severity, name in ((5, "yellow", t("Medium")), (7, "red", t("High"))):
            self.add_shape(
                row,
                type="line",
                name="news2-level",
                layer="below",
                x0=self.window[0],
                x1=self.window[1],
                y0=level,
                y1=level,
                line={"color": _EVENT_COLOURS[severity], "dash": "dash", "width": 1},
                label={"text": f"{name} ≥ {level}", "textposition": "end", "font": {"size": 10}},
            )
        self.add(
            row,
            {
                "x": [_wall_clock(at) for at, _ in scores],
                "y": [total for _, total in scores],
                "mode": "lines+markers",
                "line": {"shape": "hv", "color": _LINE, "width": 1.5},
                "marker": {"size": 4, "color": _LINE},
                "name": t("NEWS2 partial score"),
                "showlegend": False,
                "hovertemplate": f"{self.hover_time}<br>{t('Score')} %{{y}}<extra></extra>",
            },
        )
        self.axis("y", row).update(range=[0, top], dtick=2)

    def event_text(self, event: TrendEvent) -> str:
        t = self.t
        rule = RULES_BY_ID.get(event.rule_id.partition(":")[0])  # "threshold:<code>:low"
        title = event.rule_id if rule is None else rule.title.get(self.t.language, event.rule_id)
        if event.kind == "note":
            return f"{t('Note')} ({escape(title)}): {escape(event.text or '')}"
        if event.score is not None:
            return f"{escape(title)}: {t('Score')} {event.score}"
        return escape(title)


def flow_baseline(days: pd.DataFrame, z: float) -> pd.DataFrame:
    """Per day with a baseline: `lower` and `upper`, the mean of the readings of the seven
    days before it minus and plus z standard deviations (at least FLOW_MIN_READINGS)."""
    if days.empty:
        return pd.DataFrame(columns=["day", "lower", "upper"])
    daily = days.set_index("day")[["readings", "total", "squares"]].asfreq("D", fill_value=0)
    earlier = daily.rolling(BASELINE_DAYS, min_periods=1).sum().shift(1)
    count, total, squares = earlier["readings"], earlier["total"], earlier["squares"]
    mean = total / count
    spread = ((squares - total * mean) / (count - 1)).clip(lower=0) ** 0.5
    band = pd.DataFrame({"lower": mean - z * spread, "upper": mean + z * spread})
    band = band[count >= FLOW_MIN_READINGS]
    return band.reset_index()


def _weight_changes(series: pd.DataFrame, t: Translator) -> list[list[str]]:
    """Per weight reading: the change since the newest reading at least one day, and at least
    three days, before it."""
    ordered = series[["local_time", "value"]].sort_values("local_time")
    changes = []
    for back in (1, 3):
        earlier = ordered.rename(columns={"local_time": "earlier_time", "value": "earlier"})
        earlier["local_time"] = earlier["earlier_time"] + pd.Timedelta(days=back)
        merged = pd.merge_asof(ordered, earlier[["local_time", "earlier"]], on="local_time")
        changes.append((merged["value"] - merged["earlier"]).tolist())
    return [[_signed(one, t), _signed(three, t)] for one, three in zip(*changes, strict=True)]


def _weight_changes_by_day(
    series: pd.DataFrame, days: pd.DataFrame, t: Translator
) -> list[list[str]]:
    """Per day: the change of the median weight since the day before and three days before."""
    medians = days[days["code"] == WEIGHT].set_index("day")["median"]

    def change(day: pd.Timestamp, median: float, back: int) -> str:
        return _signed(median - medians.get(day - pd.Timedelta(days=back), float("nan")), t)

    return [
        [change(day, median, 1), change(day, median, 3)]
        for day, median in zip(series["day"], series["median"], strict=True)
    ]


def _signed(change: float, t: Translator) -> str:
    if math.isnan(change):  # nothing to compare with
        return NO_VALUE
    text = f"{change:+.1f}\u00a0kg"
    return text.replace(".", ",") if t.language in ("nb", "nn") else text


def _value_format(measurement: Measurement) -> str:
    return f"%{{y:.{measurement.decimals}f}}\u00a0{unit_symbol(measurement)}"


def _first_set(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _band_areas(limits: Limits, bottom: float, top: float) -> list[tuple[Severity, float, float]]:
    """(severity, from, to) of each shaded area: yellow from the yellow limit to the red one
    (or the edge of the chart), red from the red limit to the edge."""
    areas = []
    if limits.low is not None:
        areas.append((Severity.YELLOW, _first_set(limits.red_low, bottom) or bottom, limits.low))
    if limits.red_low is not None:
        areas.append((Severity.RED, bottom, limits.red_low))
    if limits.high is not None:
        areas.append((Severity.YELLOW, limits.high, _first_set(limits.red_high, top) or top))
    if limits.red_high is not None:
        areas.append((Severity.RED, limits.red_high, top))
    return [(severity, low, high) for severity, low, high in areas if low < high]


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


def trend_rows(trend: Trend, t: Translator) -> tuple[list[str], list[list[str]]]:
    """What the charts of `trend` show, as the table view and the CSV download give it: every
    reading of the range, or each day's summary for a long range. (header, rows), oldest
    first; values in the catalog's decimals and the locale."""
    names = {m.code: m for m in catalog.MEASUREMENTS}
    since, until = _wall_clock(trend.since), _wall_clock(trend.until)
    if trend.readings is not None:
        header = [t("Time"), t("Measurement"), t("Value"), t("Unit")]
        rows = [
            [
                format_moment(r.measured_at, t),
                names[r.code].name(t.language),
                format_number(r.value, names[r.code].decimals, t),
                unit_symbol(names[r.code]),
            ]
            for r in trend.readings
            if r.code in names and r.measured_at >= trend.since
        ]
        return header, rows
    header = [
        t("Day"),
        t("Measurement"),
        t("Readings"),
        t("Lowest"),
        t("Median"),
        t("Highest"),
        t("Unit"),
    ]
    rows = []
    for d in trend.days or []:
        measurement = names.get(d.code)
        if measurement is None or not since.date() <= d.day or _midnight(d.day) >= until:
            continue
        decimals = measurement.decimals
        rows.append(
            [
                format_date(d.day, t),
                measurement.name(t.language),
                str(d.readings),
                *(format_number(v, decimals, t) for v in (d.low, d.median, d.high)),
                unit_symbol(measurement),
            ]
        )
    return header, rows
