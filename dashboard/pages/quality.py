"""The figures page for the health community's coordinators: the period picker, the figures
per unit with the previous period beside them, weekly trends and units side by side, the
deviations to follow up, the CSV downloads and the definition of every figure."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Final

import pandas as pd
from babel.dates import format_date
from dash import dcc, html
from dash.development.base_component import Component

from core.i18n import Translator
from dashboard.formatting import NO_VALUE, babel_locale, format_moment, format_number
from dashboard.labels import condition_names, deviation_name, figure_name
from dashboard.links import Links
from quality.deviations import Deviation
from quality.figures import ALL, CONDITIONS, FIGURE_KEYS, WEEKLY_FIGURES, Figures, Period

DOWNLOAD_FIGURES: Final = "download-figures"
DOWNLOAD_DEVIATIONS: Final = "download-deviations"
DOWNLOAD: Final = "figures-download"
PERIOD_PICKER: Final = "figures-period"
SIDE_BY_SIDE: Final = ("adherence", "alerts", "acknowledge_minutes_median")
"""The figures drawn as bars, one group per unit: this period beside the previous one."""
_CURRENT_COLOUR: Final = "#2f5d7c"
_PREVIOUS_COLOUR: Final = "#9bb7cc"


def figures_page(
    figures: Figures,
    deviations: list[Deviation],
    *,
    condition: str,
    now: datetime,
    t: Translator,
    links: Links,
) -> Component:
    """The page for `figures`; `now` sets where the usual lengths of period end."""
    period, previous = figures.period, figures.previous
    heading = html.Div(
        [
            html.H1(t("Figures for the health community")),
            html.P(
                t("{first} to {last}, compared with {previous_first} to {previous_last}").format(
                    first=_day(period.first, t),
                    last=_day(period.last, t),
                    previous_first=_day(previous.first, t),
                    previous_last=_day(previous.last, t),
                ),
                className="summary period",
            ),
        ],
        className="page-heading",
    )
    return html.Section(
        [
            heading,
            _picker(period, condition, now=now, t=t, links=links),
            _downloads(t),
            _table(figures, condition, t=t),
            _side_by_side(figures, condition, t=t),
            _trends(figures, condition, t=t),
            _deviations(deviations, t=t, links=links),
            _definitions(t),
        ],
        className="figures-page",
    )


def _day(day: Any, t: Translator) -> str:
    return format_date(day, format="medium", locale=babel_locale(t))


def _picker(
    period: Period, condition: str, *, now: datetime, t: Translator, links: Links
) -> Component:
    """Links to the periods next to this one and to the usual lengths, and a picker for any
    two days; the address carries the period, so it can be shared and reloaded."""
    later = Period(period.last + timedelta(days=1), period.last + timedelta(days=period.days))
    presets = [
        (t("Last 4 weeks"), 4),
        (t("Last 13 weeks"), 13),
        (t("Last 52 weeks"), 52),
    ]
    last = Period.default(now).last
    nav: dict[str, Any] = {"aria-label": t("Period")}
    conditions: dict[str, Any] = {"aria-label": t("Condition")}
    return html.Div(
        [
            html.Nav(
                [
                    dcc.Link(
                        t("Previous period"),
                        href=links.figures(period.previous(), condition),
                        className="period-previous",
                    ),
                    dcc.Link(
                        t("Next period"),
                        href=links.figures(later, condition),
                        className="period-next",
                    ),
                    *(
                        dcc.Link(
                            label,
                            href=links.figures(
                                Period(last - timedelta(days=7 * weeks - 1), last), condition
                            ),
                        )
                        for label, weeks in presets
                    ),
                ],
                className="period-links",
                **nav,
            ),
            html.Label(
                [
                    html.Span(t("Choose days"), className="picker-label"),
                    dcc.DatePickerRange(
                        id=PERIOD_PICKER,
                        start_date=period.first.isoformat(),
                        end_date=period.last.isoformat(),
                        first_day_of_week=1,
                        display_format="YYYY-MM-DD",
                    ),
                ],
                className="period-picker",
            ),
            html.Nav(
                [
                    html.Span(_condition_name(c, t), className="current")
                    if c == condition
                    else dcc.Link(_condition_name(c, t), href=links.figures(period, c))
                    for c in CONDITIONS
                ],
                className="condition-links",
                **conditions,
            ),
        ],
        className="card figures-controls",
    )


def _condition_name(condition: str, t: Translator) -> str:
    return t("All conditions") if condition == ALL else condition_names([condition], t)


def _unit_name(unit_id: str, name: str, t: Translator) -> str:
    return t("All units") if unit_id == ALL else name


def _downloads(t: Translator) -> Component:
    return html.Div(
        [
            html.Button(t("Download figures (CSV)"), id=DOWNLOAD_FIGURES, className="download"),
            html.Button(
                t("Download deviations (CSV)"), id=DOWNLOAD_DEVIATIONS, className="download"
            ),
            dcc.Download(id=DOWNLOAD),
        ],
        className="downloads",
    )


def _shown(value: Any, t: Translator) -> str:
    if value is None or math.isnan(value):  # NaN: nothing to divide by
        return NO_VALUE
    return format_number(float(value), 0 if float(value).is_integer() else 1, t)


def _table(figures: Figures, condition: str, *, t: Translator) -> Component:
    """A row per figure, a column per unit: this period's value, the previous one below."""
    table = figures.table[figures.table["condition"] == condition]
    cells = {(r["period"], r["unit_id"], r["figure"]): r for r in table.to_dict("records")}
    withheld = t("Fewer than 5 patients: not shown")
    header = html.Thead(
        html.Tr(
            [
                html.Th(t("Figure"), scope="col"),
                *(
                    html.Th(_unit_name(unit_id, name, t), scope="col")
                    for unit_id, name in figures.units.items()
                ),
            ]
        )
    )

    def cell(unit_id: str, key: str) -> Component:
        now, before = cells[("current", unit_id, key)], cells[("previous", unit_id, key)]
        current = (
            html.Span("<5", title=withheld, className="suppressed")
            if now["suppressed"]
            else html.Span(_shown(now["value"], t), className="value")
        )
        previous = "<5" if before["suppressed"] else _shown(before["value"], t)
        return html.Td(
            [current, html.Span(t("before: {value}").format(value=previous), className="previous")]
        )

    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Th(figure_name(key, t), scope="row"),
                    *(cell(unit_id, key) for unit_id in figures.units),
                ]
            )
            for key in FIGURE_KEYS
        ]
    )
    return html.Section(
        [
            html.H2(t("Figures per unit")),
            html.P(withheld, className="note"),
            html.Div(html.Table([header, body], className="figures"), className="scroll"),
        ],
        className="card",
    )


def _graph(title: str, traces: list[dict[str, Any]], t: Translator) -> Component:
    """A chart as plain plotly JSON: building the traces through plotly's validating classes
    cost the page more than all its tables together (bench/figures.py)."""
    layout = {
        "title": {"text": title},
        "height": 280,
        "margin": {"l": 48, "r": 16, "t": 48, "b": 40},
        "separators": ",\u00a0" if t.language in ("nb", "nn") else ".,",
        "legend": {"orientation": "h"},
        "plot_bgcolor": "white",
    }
    return dcc.Graph(
        figure={"data": traces, "layout": layout},
        config={"displaylogo": False, "displayModeBar": "hover", "responsive": True},
    )


def _values(values: pd.Series) -> list[float | None]:
    """NaN (nothing to divide by, or withheld) is a gap in the chart."""
    return [None if math.isnan(v) else v for v in values.astype(float)]


def _side_by_side(figures: Figures, condition: str, *, t: Translator) -> Component:
    table = figures.table[
        (figures.table["condition"] == condition) & (figures.table["unit_id"] != ALL)
    ]
    parts = dict(list(table.groupby(["figure", "period"], sort=False)))
    graphs = [
        _graph(
            figure_name(key, t),
            [
                {
                    "type": "bar",
                    "name": label,
                    "x": [figures.units[u] for u in parts[(key, period)]["unit_id"]],
                    "y": _values(parts[(key, period)]["value"]),
                    "marker": {"color": colour},
                }
                for period, label, colour in (
                    ("current", t("This period"), _CURRENT_COLOUR),
                    ("previous", t("Previous period"), _PREVIOUS_COLOUR),
                )
                if (key, period) in parts
            ],
            t,
        )
        for key in SIDE_BY_SIDE
    ]
    return html.Section(
        [html.H2(t("Units side by side")), html.Div(graphs, className="charts")],
        className="card",
    )


def _trends(figures: Figures, condition: str, *, t: Translator) -> Component:
    weekly = figures.weekly[figures.weekly["condition"] == condition]
    parts = dict(list(weekly.groupby(["figure", "unit_id"], sort=False)))
    graphs = [
        _graph(
            figure_name(key, t),
            [
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": _unit_name(unit_id, name, t),
                    "x": [week.isoformat() for week in parts[(key, unit_id)]["week"]],
                    "y": _values(parts[(key, unit_id)]["value"]),
                }
                for unit_id, name in figures.units.items()
                if (key, unit_id) in parts
            ],
            t,
        )
        for key in WEEKLY_FIGURES
    ]
    return html.Section(
        [html.H2(t("Trend per week")), html.Div(graphs, className="charts")],
        className="card",
    )


def _deviations(deviations: list[Deviation], *, t: Translator, links: Links) -> Component:
    heading = html.H2(t("Deviations to follow up"))
    if not deviations:
        return html.Section([heading, html.P(t("No deviations."), className="empty")])
    header = html.Thead(
        html.Tr(
            [
                html.Th(t("When"), scope="col"),
                html.Th(t("Deviation"), scope="col"),
                html.Th(t("Unit"), scope="col"),
                html.Th(t("About"), scope="col"),
                html.Th(t("Patient"), scope="col"),
            ]
        )
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(format_moment(d.at, t)),
                    html.Td(deviation_name(d.kind, t)),
                    html.Td(d.unit or NO_VALUE),
                    html.Td(d.reference),
                    html.Td(
                        dcc.Link(d.patient, href=links.patient(d.patient_id))
                        if d.patient_id is not None and d.patient is not None
                        else html.Span(t("Not in your care"), className="muted")
                    ),
                ]
            )
            for d in deviations
        ]
    )
    return html.Section(
        [heading, html.Table([header, body], className="deviations")],
        className="card",
    )


def _definitions(t: Translator) -> Component:
    terms = [
        (
            t("Patients followed"),
            t(
                "Patients a unit was responsible for at any time in the period. New: the "
                "responsibility began in the period; ended: it ended in the period. Across "
                "all units a hand-over neither begins nor ends a follow-up."
            ),
        ),
        (
            t("Patient-days"),
            t("Days of responsibility within the period, summed over the patients, to the hour."),
        ),
        (
            t("Adherence (%)"),
            t(
                "Scheduled measurements received divided by those expected. Expected: per week "
                "and per measurement in the patient's care plan, one per interval since the "
                "plan began; received: the readings of that measurement in that week, at most "
                "as many as expected. Patients without a schedule are left out."
            ),
        ),
        (
            t("Daily check answered (%)"),
            t("Days with an answered daily symptom check divided by whole days followed."),
        ),
        (
            t("Alerts per 100 patient-days"),
            t(
                "Alerts raised in the period for the unit's patients (the unit responsible "
                "when the alert was raised) times 100, divided by patient-days; also by "
                "severity and by category (clinical, adherence, technical)."
            ),
        ),
        (
            t("Time to acknowledge and to resolve"),
            t(
                "Minutes from an alert being raised to its acknowledgement or resolution, for "
                "alerts raised in the period: median and 90th percentile, interpolated between "
                "the nearest values. Alerts not yet acknowledged or resolved are left out."
            ),
        ),
        (
            t("Alerts outside opening hours (%)"),
            t(
                "Alerts raised outside the unit's opening hours, in its own time zone, divided "
                "by all its alerts of the period. A unit without opening hours is always open."
            ),
        ),
        (
            t("Escalations"),
            t("Escalation steps taken in the period on the unit's alerts, by step."),
        ),
        (
            t("Notifications"),
            t(
                "Notifications written in the period about the unit's alerts: delivered, "
                "retried (more than one attempt, whatever the outcome) and failed."
            ),
        ),
        (
            t("Hand-overs"),
            t(
                "Hand-overs proposed in the period to the unit asked to take over; of them "
                "accepted and declined, and the median hours from proposal to acceptance."
            ),
        ),
        (
            t("Patients per nurse"),
            t(
                "Patients the unit is responsible for at the end of the period divided by the "
                "nurses it employs then."
            ),
        ),
    ]
    items: list[Component] = []
    for term, definition in terms:
        items.extend([html.Dt(term), html.Dd(definition)])
    return html.Section(
        html.Details(
            [html.Summary(t("Definitions")), html.Dl(items)],
            open=True,
        ),
        className="card definitions",
    )
