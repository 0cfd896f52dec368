"""The patient page: unresolved alerts (with every step on them), the last 7 days drawn
against the care plan's limits, the devices."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from dash import dcc, html
from dash.development.base_component import Component

from alerts.library.catalogue import RULES_BY_ID
from alerts.queries import Alert, Episode
from core import catalog
from core.i18n import Translator
from core.limits import Severity
from dashboard.data.patient import PatientView
from dashboard.data.worklist import severity_of
from dashboard.figures import trend_figure
from dashboard.formatting import (
    NO_VALUE,
    format_date,
    format_moment,
    format_relative,
)
from dashboard.labels import (
    alert_state_name,
    condition_names,
    connection_text,
    device_kind_name,
    direction_arrow,
    direction_text,
)
from dashboard.links import Links
from dashboard.pages.alert_steps import alert_steps, notes_list, who_is_on_it
from dashboard.pages.badges import severity_badge
from dashboard.ranges import PRESET_DAYS, TrendRange
from dashboard.reasons import findings, rule_title
from devices.status import DeviceOverview


def patient_page(
    view: PatientView,
    *,
    now: datetime,
    t: Translator,
    links: Links,
    handling: int | None = None,
) -> Component:
    """The page; the forms of the episode led by alert `handling` open."""
    patient = view.patient
    facts = html.Dl(
        [
            html.Dt(t("Conditions")),
            html.Dd(condition_names(patient.conditions, t)),
            html.Dt(t("Responsible unit")),
            html.Dd(patient.responsible_unit or NO_VALUE),
        ],
        className="facts",
    )
    return html.Div(
        [
            dcc.Link(["← ", t("Worklist")], href=links.worklist(), className="back"),
            html.Div(
                [html.H1(patient.display_name), severity_badge(severity_of(view.episodes), t)],
                className="page-heading patient-heading",
            ),
            facts,
            dcc.Link(
                t("Care plan and responsibility"),
                href=links.care_plan(patient.id),
                className="care-plan-link",
            ),
            html.Section(
                [
                    html.H2(t("Unresolved alerts")),
                    _alerts(view, now=now, t=t, links=links, handling=handling),
                ],
                className="card",
            ),
            _trend_section(view, now=now, t=t, links=links),
            html.Section(
                [html.H2(t("Devices")), _devices(view.devices, now=now, t=t)], className="card"
            ),
        ]
    )


RANGE_FROM, RANGE_TO, RANGE_SHOW = "trend-range-from", "trend-range-to", "trend-range-show"
SHOW_TABLE: Final = "trend-show-table"
TREND_TABLE: Final = "trend-table"
DOWNLOAD_TREND: Final = "trend-download-csv"
TREND_DOWNLOAD: Final = "trend-download"


def _trend_section(view: PatientView, *, now: datetime, t: Translator, links: Links) -> Component:
    """The range choices, the charts, and the same data as a table or CSV on request."""
    trend = view.trend
    return html.Section(
        [
            html.H2(trend_heading(trend.range, t)),
            _range_choices(view, now=now, t=t, links=links),
            _trend(view, t=t),
            html.Div(
                [
                    html.Button(t("Show as table"), id=SHOW_TABLE, className="download"),
                    html.Button(t("Download (CSV)"), id=DOWNLOAD_TREND, className="download"),
                    dcc.Download(id=TREND_DOWNLOAD),
                ],
                className="trend-actions",
            ),
            dcc.Loading(html.Div(id=TREND_TABLE, className="scroll")),
        ],
        className="card",
    )


def trend_heading(trend_range: TrendRange, t: Translator) -> str:
    if trend_range.days is None:
        return t("{first} to {last}").format(
            first=format_date(trend_range.first, t), last=format_date(trend_range.last, t)
        )
    return t("Last {days} days").format(days=trend_range.days)


DAY_FIELD: Final[dict[str, Any]] = {  # a day typed as text: Dash 4.4's date picker fails axe
    "placeholder": "YYYY-MM-DD",
    "pattern": r"\d{4}-\d{2}-\d{2}",
    "size": 10,
    "inputMode": "numeric",
}


def _range_choices(view: PatientView, *, now: datetime, t: Translator, links: Links) -> Component:
    """7, 30, 90 and 365 days as links (the range is in the address), and any whole days."""
    chosen = view.trend.range
    first, last = chosen.shown_days(now)
    current: dict[str, Any] = {"aria-current": "true"}  # no Python keyword has a hyphen
    nav: dict[str, Any] = {"aria-label": t("Range")}
    presets = [
        html.Span(t("{days} days").format(days=days), className="current", **current)
        if chosen.days == days
        else dcc.Link(
            t("{days} days").format(days=days),
            href=links.patient(view.patient.id, TrendRange(days)),
        )
        for days in PRESET_DAYS
    ]
    # Two labelled fields and a button: Dash 4.4's date picker draws a div with popup states
    # but no role, which axe-core counts as a critical violation.
    group: dict[str, Any] = {"role": "group", "aria-label": t("Choose days")}
    picker = html.Div(
        [
            html.Label(t("From"), htmlFor=RANGE_FROM),
            dcc.Input(id=RANGE_FROM, type="text", value=first.isoformat(), **DAY_FIELD),
            html.Label(t("To"), htmlFor=RANGE_TO),
            dcc.Input(id=RANGE_TO, type="text", value=last.isoformat(), **DAY_FIELD),
            html.Button(t("Show these days"), id=RANGE_SHOW, type="button"),
        ],
        className="period-picker",
        **group,
    )
    return html.Div(
        [html.Nav(presets, className="choices", **nav), picker],
        className="range-choices",
    )


def _trend(view: PatientView, *, t: Translator) -> Component:
    figure = trend_figure(view.trend, t=t, revision=str(view.patient.id))
    if figure is None:
        return html.P(t("No readings in this range."), className="empty")
    return dcc.Graph(
        id="trend",
        figure=figure,
        config={"displaylogo": False, "displayModeBar": "hover", "responsive": True},
    )


def trend_table(header: list[str], rows: list[list[str]], *, t: Translator) -> Component:
    """What the charts show, as text: every reading, or each day's summary."""
    if not rows:
        return html.P(t("No readings in this range."), className="empty")
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(label, scope="col") for label in header])),
            html.Tbody([html.Tr([html.Td(cell) for cell in row]) for row in rows]),
        ],
        className="trend-table",
    )


def _devices(devices: list[DeviceOverview], *, now: datetime, t: Translator) -> Component:
    """Each device with its connection, battery, firmware and when it was last heard from: a
    silent device explains missing readings before anyone phones the patient."""
    if not devices:
        return html.P(t("No devices assigned."), className="empty")
    rows = [
        html.Tr(
            [
                html.Td(device_kind_name(d.kind, t)),
                html.Td(d.device_id, className="device-id"),
                html.Td(connection_text(d.online, t)),
                html.Td(NO_VALUE if d.battery_pct is None else f"{d.battery_pct:.0f}\u00a0%"),
                html.Td(d.firmware or NO_VALUE, className="firmware"),
                html.Td(
                    t("Not heard from yet")
                    if d.last_seen_at is None
                    else html.Time(
                        format_relative(d.last_seen_at, now, t),
                        dateTime=d.last_seen_at.isoformat(),
                        title=format_moment(d.last_seen_at, t),
                    )
                ),
            ]
        )
        for d in devices
    ]
    header = html.Tr(
        [
            html.Th(t("Device"), scope="col"),
            html.Th(t("Device id"), scope="col"),
            html.Th(t("Connection"), scope="col"),
            html.Th(t("Battery"), scope="col"),
            html.Th(t("Firmware"), scope="col"),
            html.Th(t("Last heard from"), scope="col"),
        ]
    )
    return html.Div(
        html.Table([html.Thead(header), html.Tbody(rows)], className="devices"), className="scroll"
    )


def _alerts(
    view: PatientView, *, now: datetime, t: Translator, links: Links, handling: int | None
) -> Component:
    if not view.episodes:
        return html.P(t("No unresolved alerts."), className="empty")
    return html.Ul(
        [
            _episode(episode, view, now=now, t=t, links=links, handling=handling)
            for episode in view.episodes
        ],
        className="alerts",
    )


def _episode(
    episode: Episode,
    view: PatientView,
    *,
    now: datetime,
    t: Translator,
    links: Links,
    handling: int | None,
) -> Component:
    """One card per episode: its first alert's title with the episode's severity and who is on
    it, then every alert of it with its explanation and values, the notes, and (for staff who
    may act) every step on the episode."""
    lead, *others = episode.parts
    title = [
        severity_badge(Severity(episode.severity), t),
        *_part_title(lead, t),
        html.Span(alert_state_name(episode.state, t), className="state"),
    ]
    parts: list[Component | None] = [html.Div(title, className="alert-title")]
    parts.append(
        html.Div(
            who_is_on_it(
                episode,
                names=view.names,
                snooze=view.snoozes.get(episode.id),
                now=now,
                t=t,
            ),
            className="alert-who",
        )
    )
    parts += _part(lead, now=now, t=t)
    for alert in others:
        parts.append(
            html.Div(
                [severity_badge(Severity(alert.severity), t), *_part_title(alert, t)],
                className="alert-part-title",
            )
        )
        parts += _part(alert, now=now, t=t)
    parts.append(notes_list(view.notes.get(episode.id, []), t=t))
    if view.can_act and view.viewer is not None:
        opened = handling == episode.lead.id
        parts.append(
            alert_steps(
                episode,
                viewer=view.viewer,
                colleagues=view.colleagues,
                notes=view.notes.get(episode.id, []),
                t=t,
                open_href=None
                if opened
                else links.patient(view.patient.id, handle=episode.lead.id),
            )
        )
        if opened:
            parts.append(dcc.Link(t("Close"), href=links.patient(view.patient.id)))
    return html.Li(parts, className=f"alert alert-{episode.severity}")


def _part_title(alert: Alert, t: Translator) -> list[Component]:
    """The measurement, or the rule in words where the alert has none (never its raw id)."""
    measurement = catalog.lookup(alert.code) if alert.code else None
    name = measurement.name(t.language) if measurement is not None else rule_title(alert.rule_id, t)
    title: list[Component] = [html.Strong(name)]
    if alert.direction:
        title.append(
            html.Span(
                [direction_arrow(alert.direction), " ", direction_text(alert.direction, t)],
                className="direction",
            )
        )
    return title


def _part(alert: Alert, *, now: datetime, t: Translator) -> list[Component | None]:
    """The rule's explanation, what it found (dashboard.reasons: the values behind it), and
    when."""
    rule = RULES_BY_ID.get(alert.rule_id)
    details: list[tuple[str, str]] = []
    found = findings(alert, now=now, t=t)
    if found:
        details.append((rule_title(alert.rule_id, t), found))
    details += [
        (t("Occurrences"), str(alert.occurrences)),
        (t("First"), format_moment(alert.first_measured_at, t)),
        (
            t("Last"),
            f"{format_moment(alert.last_measured_at, t)} "
            f"({format_relative(alert.last_measured_at, now, t)})",
        ),
    ]
    return [
        html.P(rule.explanation.get(t.language) or rule.explanation["en"], className="explanation")
        if rule
        else None,
        html.Dl(
            [part for label, text in details for part in (html.Dt(label), html.Dd(text))],
            className="facts",
        ),
    ]
