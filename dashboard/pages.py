"""The pages: what each one reads from the database, and how it shows it.

Every string from a patient, a unit or a device is passed to Dash as a child string, which
React renders as text; nothing here builds HTML.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import psycopg
from dash import dcc, html
from dash.development.base_component import Component

from alerts.rules import RULES
from alerts.service import Alert, unresolved_alerts
from care.access import (
    AccessLogEntry,
    Action,
    Interface,
    Permission,
    Reason,
    access_log,
    authorize,
    do_access_patient,
    do_log_access,
    visible_patients_filter,
)
from care.models import Condition, Patient, Threshold
from care.service import get_patient, list_patients, thresholds_for
from core import catalog
from core.auth import Principal
from core.i18n import Translator
from core.readings import Reading, latest_readings, readings_for_patient
from dashboard.figures import trend_figure
from dashboard.formatting import NO_VALUE, format_moment, format_relative, format_value
from dashboard.links import Links
from devices.status import DeviceOverview, devices_with_status

TREND_WINDOW: Final = timedelta(days=7)

RED: Final = "red"
YELLOW: Final = "yellow"
GREEN: Final = "green"
_URGENCY: Final = {RED: 0, YELLOW: 1, GREEN: 2}
_RULES: Final = {rule.id: rule for rule in RULES}


def severity_of(alerts: Sequence[Alert]) -> str:
    """The patient's state: the worst unresolved alert, green without any."""
    severities = {alert.severity for alert in alerts}
    return next((s for s in (RED, YELLOW) if s in severities), GREEN)


def severity_badge(severity: str, t: Translator) -> Component:
    """A coloured badge that says its colour too: colour is never the only signal."""
    labels = {RED: t("Red"), YELLOW: t("Yellow"), GREEN: t("Green")}
    return html.Span(labels[severity], className=f"badge badge-{severity}")


def condition_names(conditions: Sequence[str], t: Translator) -> str:
    labels = {Condition.COPD: t("COPD"), Condition.HEART_FAILURE: t("heart failure")}
    return ", ".join(labels.get(c, c) for c in conditions) or NO_VALUE


def direction_text(direction: str | None, t: Translator) -> str:
    labels = {"low": t("below the lower limit"), "high": t("above the upper limit")}
    return labels.get(direction or "", "")


def direction_arrow(direction: str | None) -> str:
    return {"low": "↓", "high": "↑"}.get(direction or "", "")


# --- worklist ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorklistRow:
    patient: Patient
    latest: list[Reading]
    """The newest reading per measurement, in catalog order."""
    alerts: list[Alert]

    @property
    def severity(self) -> str:
        return severity_of(self.alerts)

    @property
    def last_measured_at(self) -> datetime | None:
        return max((r.measured_at for r in self.latest), default=None)


@dataclass(frozen=True, slots=True)
class View:
    """Who looks, when, and whether this is the page's periodic refresh.

    A refresh re-checks access but writes no access-log row: it shows the same view to the same
    person, already logged when the page was opened, and a row every five seconds per open
    screen would drown the log that patients and auditors read.
    """

    principal: Principal
    now: datetime
    refresh: bool


def load_worklist(conn: psycopg.Connection, *, view: View) -> list[WorklistRow]:
    """The patients in the viewer's care, red first, then yellow, then the rest; by name."""
    now = view.now
    reason = authorize(conn, principal=view.principal, permission=Permission.READ_PATIENT, now=now)
    patients = list_patients(
        conn, now=now, visible=visible_patients_filter(view.principal, now=now)
    )
    if not view.refresh:
        do_log_access(
            conn,
            principal=view.principal,
            patient_ids=[p.id for p in patients],
            resource="worklist",
            action=Action.READ,
            interface=Interface.DASHBOARD,
            reason=Reason.CARE_TEAM if reason is Reason.ADMINISTRATION else reason,
            now=now,
        )
    order = {m.code: i for i, m in enumerate(catalog.MEASUREMENTS)}
    latest: dict[UUID, list[Reading]] = defaultdict(list)
    for reading in latest_readings(conn, patient_ids=[p.id for p in patients]):
        latest[reading.patient_id].append(reading)
    alerts: dict[UUID, list[Alert]] = defaultdict(list)
    for alert in unresolved_alerts(conn):
        alerts[alert.patient_id].append(alert)
    rows = [
        WorklistRow(
            patient=patient,
            latest=sorted(latest[patient.id], key=lambda r: order.get(r.code, len(order))),
            alerts=alerts[patient.id],
        )
        for patient in patients
    ]
    return sorted(rows, key=lambda row: _URGENCY[row.severity])


def worklist_page(
    rows: list[WorklistRow], *, now: datetime, t: Translator, links: Links
) -> Component:
    counts = {s: sum(1 for row in rows if row.severity == s) for s in (RED, YELLOW)}
    summary = html.P(
        [
            t.ngettext("{count} patient", "{count} patients", len(rows)).format(count=len(rows)),
            " · ",
            t("Red: {count}").format(count=counts[RED]),
            " · ",
            t("Yellow: {count}").format(count=counts[YELLOW]),
        ],
        className="summary",
    )
    heading = html.Div([html.H1(t("Worklist")), summary], className="page-heading")
    if not rows:
        return html.Section([heading, html.P(t("No patients yet."), className="empty")])
    header = html.Thead(
        html.Tr(
            [
                html.Th(t("Status"), scope="col"),
                html.Th(t("Patient"), scope="col"),
                html.Th(t("Conditions"), scope="col"),
                html.Th(t("Responsible unit"), scope="col"),
                html.Th(t("Latest values"), scope="col"),
                html.Th(t("Latest reading"), scope="col"),
            ]
        )
    )
    body = html.Tbody([_worklist_row(row, now=now, t=t, links=links) for row in rows])
    return html.Section(
        [heading, html.Table([header, body], className="worklist")], className="card"
    )


def _worklist_row(row: WorklistRow, *, now: datetime, t: Translator, links: Links) -> Component:
    patient = row.patient
    last = row.last_measured_at
    return html.Tr(
        [
            html.Td(severity_badge(row.severity, t)),
            html.Td(
                dcc.Link(patient.display_name, href=links.patient(patient.id)), className="name"
            ),
            html.Td(condition_names(patient.conditions, t)),
            html.Td(patient.responsible_unit or NO_VALUE),
            html.Td(_latest_values(row, t)),
            html.Td(
                NO_VALUE
                if last is None
                else html.Span(format_relative(last, now, t), title=format_moment(last, t)),
                className="when",
            ),
        ],
        className=f"row-{row.severity}",
    )


def _latest_values(row: WorklistRow, t: Translator) -> Component | str:
    if not row.latest:
        return NO_VALUE
    alerted = {a.code: a for a in row.alerts if a.code is not None}
    items = []
    for reading in row.latest:
        measurement = catalog.lookup(reading.code)
        if measurement is None:
            continue
        alert = alerted.get(reading.code)
        value: list[Component | str] = [format_value(measurement, reading.value, t)]
        if alert is not None:
            value.append(
                html.Span(
                    direction_arrow(alert.direction),
                    title=direction_text(alert.direction, t),
                    className="arrow",
                )
            )
        items.append(
            html.Li(
                [
                    html.Span(measurement.name(t.language), className="measure-name"),
                    html.Span(value, className="measure-value"),
                ],
                className=None if alert is None else f"alerted alerted-{alert.severity}",
            )
        )
    return html.Ul(items, className="values")


# --- patient page ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatientView:
    patient: Patient
    alerts: list[Alert]
    readings: list[Reading]
    thresholds: list[Threshold]
    devices: list[DeviceOverview]
    looked_at_by: list[AccessLogEntry] | None
    """For a patient looking at their own page: who has looked at their data."""


def load_patient(conn: psycopg.Connection, *, patient_id: UUID, view: View) -> PatientView | None:
    """The patient page's data, after the one access check (NotVisibleError if refused)."""
    now, principal = view.now, view.principal
    if view.refresh:
        authorize(
            conn,
            principal=principal,
            permission=Permission.READ_PATIENT,
            patient_id=patient_id,
            now=now,
        )
    else:
        do_access_patient(
            conn,
            principal=principal,
            permission=Permission.READ_PATIENT,
            patient_id=patient_id,
            resource="patient-page",
            action=Action.READ,
            interface=Interface.DASHBOARD,
            now=now,
        )
    patient = get_patient(conn, patient_id=patient_id, now=now)
    if patient is None:
        return None
    own = principal.kind == "patient"
    return PatientView(
        looked_at_by=access_log(conn, patient_id=patient_id, limit=50, offset=0) if own else None,
        patient=patient,
        alerts=unresolved_alerts(conn, patient_id=patient_id),
        readings=readings_for_patient(conn, patient_id=patient_id, since=now - TREND_WINDOW),
        thresholds=thresholds_for(conn, patient_id=patient_id),
        devices=devices_with_status(conn, patient_id=patient_id, at=now),
    )


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
    figure = trend_figure(
        view.readings,
        view.thresholds,
        since=now - TREND_WINDOW,
        until=now,
        t=t,
        revision=str(patient.id),
    )
    trend = (
        html.P(t("No readings in the last 7 days."), className="empty")
        if figure is None
        else dcc.Graph(
            id="trend",
            figure=figure,
            config={"displaylogo": False, "displayModeBar": "hover", "responsive": True},
        )
    )
    return html.Div(
        [
            dcc.Link(["← ", t("Worklist")], href=links.worklist(), className="back"),
            html.Div(
                [html.H1(patient.display_name), severity_badge(severity_of(view.alerts), t)],
                className="page-heading patient-heading",
            ),
            facts,
            html.Section(
                [html.H2(t("Unresolved alerts")), _alerts(view.alerts, now=now, t=t)],
                className="card",
            ),
            html.Section([html.H2(t("Last 7 days")), trend], className="card"),
            html.Section(
                [html.H2(t("Devices")), _devices(view.devices, now=now, t=t)], className="card"
            ),
            *([] if view.looked_at_by is None else [_looked_at_by(view.looked_at_by, t=t)]),
        ]
    )


def _looked_at_by(entries: list[AccessLogEntry], *, t: Translator) -> Component:
    """The patient's own access log, as helsenorge.no shows it: who, when, from where, why."""
    reasons = {
        "care_team": t("Member of your care team"),
        "own_data": t("You"),
        "handover": t("Receiving unit for a hand-over"),
        "administration": t("Administration"),
    }
    if not entries:
        body: Component = html.P(t("Nobody has looked at your data yet."), className="empty")
    else:
        body = html.Table(
            [
                html.Thead(html.Tr([html.Th(t("When")), html.Th(t("Who")), html.Th(t("Why"))])),
                html.Tbody(
                    [
                        html.Tr(
                            [
                                html.Td(format_moment(entry.at, t)),
                                html.Td(
                                    entry.actor_name
                                    if entry.organisation_name is None
                                    else f"{entry.actor_name}, {entry.organisation_name}"
                                ),
                                html.Td(reasons.get(entry.reason_code, entry.reason_code)),
                            ]
                        )
                        for entry in entries
                    ]
                ),
            ],
            className="access-log",
        )
    return html.Section([html.H2(t("Who has looked at my data")), body], className="card")


def login_page(*, t: Translator, failed: bool) -> Component:
    """Password log-in of the built-in issuer; the form posts to /auth/login, which sets the
    session cookie and comes back here."""
    return html.Section(
        [
            html.H1(t("Log in")),
            *([html.P(t("Wrong user name or password"), role="alert")] if failed else []),
            html.Form(
                [
                    html.Label(t("User name"), htmlFor="username"),
                    dcc.Input(id="username", name="username", type="text", autoComplete="username"),
                    html.Label(t("Password"), htmlFor="password"),
                    dcc.Input(
                        id="password",
                        name="password",
                        type="password",
                        autoComplete="current-password",
                    ),
                    html.Button(t("Log in"), type="submit"),
                ],
                action="/auth/login",
                method="POST",
                className="login",
            ),
        ],
        className="card login-card",
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
                html.Td(_connection(d.online, t)),
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


def _connection(online: bool | None, t: Translator) -> str:
    if online is None:
        return NO_VALUE
    return t("Online") if online else t("Offline")


def device_kind_name(kind: str, t: Translator) -> str:
    names = {
        "pulse_oximeter": t("Pulse oximeter"),
        "blood_pressure_monitor": t("Blood pressure monitor"),
        "scale": t("Scale"),
        "thermometer": t("Thermometer"),
        "peak_flow_meter": t("Peak flow meter"),
        "spirometer": t("Spirometer"),
    }
    return names.get(kind, kind)


def _alerts(alerts: list[Alert], *, now: datetime, t: Translator) -> Component:
    if not alerts:
        return html.P(t("No unresolved alerts."), className="empty")
    return html.Ul([_alert(alert, now=now, t=t) for alert in alerts], className="alerts")


def _alert(alert: Alert, *, now: datetime, t: Translator) -> Component:
    measurement = catalog.lookup(alert.code) if alert.code else None
    rule = _RULES.get(alert.rule_id.partition(":")[0])
    states = {"open": t("Not acknowledged"), "acknowledged": t("Acknowledged")}
    title = [
        severity_badge(alert.severity, t),
        html.Strong(measurement.name(t.language) if measurement else alert.rule_id),
    ]
    if alert.direction:
        title.append(
            html.Span(
                [direction_arrow(alert.direction), " ", direction_text(alert.direction, t)],
                className="direction",
            )
        )
    title.append(html.Span(states.get(alert.state, alert.state), className="state"))
    details = [
        (t("Last value"), _alert_value(alert, measurement, t)),
        (t("Occurrences"), str(alert.occurrences)),
        (t("First"), format_moment(alert.first_measured_at, t)),
        (
            t("Last"),
            f"{format_moment(alert.last_measured_at, t)} "
            f"({format_relative(alert.last_measured_at, now, t)})",
        ),
    ]
    return html.Li(
        [
            html.Div(title, className="alert-title"),
            html.P(
                rule.explanation.get(t.language) or rule.explanation["en"], className="explanation"
            )
            if rule
            else None,
            html.Dl(
                [part for label, value in details for part in (html.Dt(label), html.Dd(value))],
                className="facts",
            ),
        ],
        className=f"alert alert-{alert.severity}",
    )


def _alert_value(alert: Alert, measurement: catalog.Measurement | None, t: Translator) -> str:
    if measurement is None or alert.last_value is None:
        return NO_VALUE
    return format_value(measurement, alert.last_value, t)


def not_found_page(message: str, *, t: Translator, links: Links) -> Component:
    return html.Section(
        [
            html.H1(message),
            html.P(dcc.Link(["← ", t("Back to the worklist")], href=links.worklist())),
        ],
        className="card not-found",
    )
