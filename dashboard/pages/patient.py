"""The patient page: unresolved alerts (with the acknowledge button), the last 7 days drawn
against the care plan's limits, the devices."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from dash import dcc, html
from dash.development.base_component import Component

from alerts.library.catalogue import RULES_BY_ID
from alerts.library.news2 import RULE as NEWS2
from alerts.queries import Alert, Episode
from core import catalog
from core.i18n import Translator
from core.limits import Severity
from dashboard.data.patient import TREND_WINDOW, PatientView
from dashboard.data.worklist import severity_of
from dashboard.figures import trend_figure
from dashboard.formatting import NO_VALUE, format_moment, format_relative, format_value
from dashboard.labels import (
    alert_state_name,
    condition_names,
    connection_text,
    device_kind_name,
    direction_arrow,
    direction_text,
)
from dashboard.links import Links
from dashboard.pages.badges import severity_badge
from devices.status import DeviceOverview

ACKNOWLEDGE: Final = "acknowledge"
"""The type of the acknowledge buttons' pattern-matching ids: {"type": ..., "alert": id}."""


def patient_page(view: PatientView, *, now: datetime, t: Translator, links: Links) -> Component:
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
                    _alerts(view.episodes, now=now, t=t, can_act=view.can_act),
                ],
                className="card",
            ),
            html.Section([html.H2(t("Last 7 days")), _trend(view, now=now, t=t)], className="card"),
            html.Section(
                [html.H2(t("Devices")), _devices(view.devices, now=now, t=t)], className="card"
            ),
        ]
    )


def _trend(view: PatientView, *, now: datetime, t: Translator) -> Component:
    figure = trend_figure(
        view.readings,
        view.limits,
        since=now - TREND_WINDOW,
        until=now,
        t=t,
        revision=str(view.patient.id),
    )
    if figure is None:
        return html.P(t("No readings in the last 7 days."), className="empty")
    return dcc.Graph(
        id="trend",
        figure=figure,
        config={"displaylogo": False, "displayModeBar": "hover", "responsive": True},
    )


def _devices(devices: list[DeviceOverview], *, now: datetime, t: Translator) -> Component:
    """Each device with its connection, battery and when it was last heard from: a silent
    device explains missing readings before anyone phones the patient."""
    if not devices:
        return html.P(t("No devices assigned."), className="empty")
    rows = [
        html.Tr(
            [
                html.Td([device_kind_name(d.kind, t), html.Span(d.device_id, className="muted")]),
                html.Td(connection_text(d.online, t)),
                html.Td(NO_VALUE if d.battery_pct is None else f"{d.battery_pct:.0f} %"),
                html.Td(
                    t("Not heard from yet")
                    if d.last_seen_at is None
                    else format_relative(d.last_seen_at, now, t)
                ),
            ]
        )
        for d in devices
    ]
    header = html.Tr(
        [
            html.Th(t("Device")),
            html.Th(t("Connection")),
            html.Th(t("Battery")),
            html.Th(t("Last heard from")),
        ]
    )
    return html.Table([html.Thead(header), html.Tbody(rows)], className="devices")


def _alerts(episodes: list[Episode], *, now: datetime, t: Translator, can_act: bool) -> Component:
    if not episodes:
        return html.P(t("No unresolved alerts."), className="empty")
    return html.Ul(
        [_episode(episode, now=now, t=t, can_act=can_act) for episode in episodes],
        className="alerts",
    )


def _episode(episode: Episode, *, now: datetime, t: Translator, can_act: bool) -> Component:
    """One card per episode: its first alert's title with the episode's severity and state,
    then every alert of it with its explanation and values; one Acknowledge button for all."""
    lead, *others = episode.parts
    title = [
        severity_badge(Severity(episode.severity), t),
        *_part_title(lead, t),
        html.Span(alert_state_name(episode.state, t), className="state"),
    ]
    parts: list[Component | None] = [html.Div(title, className="alert-title")]
    parts += _part(lead, now=now, t=t)
    for alert in others:
        parts.append(
            html.Div(
                [severity_badge(Severity(alert.severity), t), *_part_title(alert, t)],
                className="alert-part-title",
            )
        )
        parts += _part(alert, now=now, t=t)
    parts.append(
        html.Button(
            t("Acknowledge"),
            id={"type": ACKNOWLEDGE, "alert": lead.id},
            className="acknowledge",
        )
        if can_act and episode.state == "open"
        else None
    )
    return html.Li(parts, className=f"alert alert-{episode.severity}")


def _part_title(alert: Alert, t: Translator) -> list[Component]:
    """The measurement, or the rule in words where the alert has none (never its raw id)."""
    measurement = catalog.lookup(alert.code) if alert.code else None
    rule = RULES_BY_ID.get(alert.rule_id)
    if measurement is not None:
        name = measurement.name(t.language)
    elif rule is not None:
        name = rule.title.get(t.language) or rule.title["en"]
    else:
        name = alert.rule_id
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
    rule = RULES_BY_ID.get(alert.rule_id)
    details: list[tuple[str, str]] = []
    value = _alert_value(alert, t)
    if value is not None:
        details.append(value)
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


def _alert_value(alert: Alert, t: Translator) -> tuple[str, str] | None:
    """(label, text) of what the alert's rule found, or None when it found no value: a
    partial NEWS2 shows its score, the SpO2 scale, the parameters it used and those missing."""
    if alert.rule_id == NEWS2:
        used = alert.details.get("used", {})
        scored = [
            f"{_name(code, t)} {_value(code, float(p['value']), t)} ({p['score']})"
            for code, p in used.items()
        ]
        missing = [_name(code, t) for code in alert.details.get("missing", [])]
        text = t("{total} (partial, SpO2 scale {scale}) from {used}; missing: {missing}")
        return t("Score"), text.format(
            total=alert.details.get("total", NO_VALUE),
            scale=alert.details.get("spo2_scale", NO_VALUE),
            used=", ".join(scored) or NO_VALUE,
            missing=", ".join(missing) or NO_VALUE,
        )
    measurement = catalog.lookup(alert.code) if alert.code else None
    if measurement is None or alert.last_value is None:
        return None
    return t("Last value"), format_value(measurement, alert.last_value, t)


def _name(code: str, t: Translator) -> str:
    if code == "consciousness":
        return t("consciousness")
    measurement = catalog.lookup(code)
    return code if measurement is None else measurement.name(t.language)


def _value(code: str, value: float, t: Translator) -> str:
    measurement = catalog.lookup(code)
    return str(value) if measurement is None else format_value(measurement, value, t)
