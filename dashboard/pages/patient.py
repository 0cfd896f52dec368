"""The patient page: unresolved alerts (with every step on them), the last 7 days drawn
against the care plan's limits, the devices."""

from __future__ import annotations

from datetime import datetime

from dash import dcc, html
from dash.development.base_component import Component

from alerts.library.catalogue import RULES_BY_ID
from alerts.queries import Alert, Episode
from core import catalog
from core.i18n import Translator
from core.limits import Severity
from dashboard.data.patient import TREND_WINDOW, PatientView
from dashboard.data.worklist import severity_of
from dashboard.figures import trend_figure
from dashboard.formatting import NO_VALUE, format_moment, format_relative
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
