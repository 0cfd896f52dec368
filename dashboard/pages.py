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

from alerts.library.catalogue import RULES_BY_ID
from alerts.lifecycle import do_acknowledge
from alerts.outbox import SentNotification
from alerts.service import Alert, unresolved_alerts
from care.access import (
    ROLES,
    AccessLogEntry,
    Action,
    Interface,
    NotVisibleError,
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
from core.auth import Principal, StaffRole
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
WORKLIST_RESOURCE: Final = "worklist"
PATIENT_RESOURCE: Final = "patient-page"


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

    Opening a page (first load, a link, a changed address) writes one access-log row, in the
    transaction that reads the data. The refresh every few seconds checks access again but
    writes a row only when no row of this viewer, for this page and covering every patient
    shown, is younger than `LOG_COVERS`: the screen shows the same person the same view that
    is already logged, and a row every five seconds per open screen would drown the log that
    patients and auditors read. The check is made in the database, not in this process, so
    a patient newly on the worklist, a restart, another server process or a request that only
    claims to be a refresh still leaves a row.
    """

    principal: Principal
    now: datetime
    refresh: bool


LOG_COVERS: Final = timedelta(minutes=10)
"""How long one access-log row covers the refreshes of the page it records."""
_RECENT_ROWS: Final = 200


def _already_logged(
    conn: psycopg.Connection, *, view: View, resource: str, patient_ids: Sequence[UUID]
) -> bool:
    """Whether this refresh is covered by a recent row (see `View`); never for a page opened."""
    if not view.refresh:
        return False
    shown = set(patient_ids)
    recent = access_log(
        conn,
        actor_id=view.principal.id,
        patient_id=patient_ids[0] if len(shown) == 1 else None,
        since=view.now - LOG_COVERS,
        limit=_RECENT_ROWS,
        offset=0,
    )
    return any(
        entry.interface == Interface.DASHBOARD
        and entry.resource == resource
        and entry.actor_kind == view.principal.kind
        and shown <= set(entry.patient_ids)
        for entry in recent
    )


def load_worklist(conn: psycopg.Connection, *, view: View) -> list[WorklistRow]:
    """The patients in the viewer's care, red first, then yellow, then the rest; by name.

    The list is filtered in SQL by care.access (a nurse: her care teams' patients now; a
    patient: themself), and leaves one access-log row naming every patient listed.
    """
    now, principal = view.now, view.principal
    reason = authorize(conn, principal=principal, permission=Permission.READ_PATIENT, now=now)
    patients = list_patients(conn, now=now, visible=visible_patients_filter(principal, now=now))
    patient_ids = [p.id for p in patients]
    if not _already_logged(conn, view=view, resource=WORKLIST_RESOURCE, patient_ids=patient_ids):
        do_log_access(
            conn,
            principal=principal,
            patient_ids=patient_ids,
            resource=WORKLIST_RESOURCE,
            action=Action.READ,
            interface=Interface.DASHBOARD,
            # Staff see the list through their care teams (administrators too); a patient, self.
            reason=Reason.CARE_TEAM if reason is Reason.ADMINISTRATION else reason,
            now=now,
        )
    order = {m.code: i for i, m in enumerate(catalog.MEASUREMENTS)}
    latest: dict[UUID, list[Reading]] = defaultdict(list)
    for reading in latest_readings(conn, patient_ids=patient_ids):
        latest[reading.patient_id].append(reading)
    alerts: dict[UUID, list[Alert]] = defaultdict(list)
    for alert in unresolved_alerts(conn, patient_ids=patient_ids):
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
    rows: list[WorklistRow],
    *,
    now: datetime,
    t: Translator,
    links: Links,
    outbox: list[SentNotification] | None = None,
) -> Component:
    """The worklist; in demo mode (`outbox` given) the demo outbox below it."""
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
    worklist = html.Section(
        [heading, html.Table([header, body], className="worklist")], className="card"
    )
    if outbox is None:
        return worklist
    names = {row.patient.id: row.patient.display_name for row in rows}
    return html.Div([worklist, _demo_outbox(outbox, names=names, now=now, t=t)])


def _demo_outbox(
    outbox: list[SentNotification], *, names: dict[UUID, str], now: datetime, t: Translator
) -> Component:
    """What the platform would have sent by e-mail or webhook: in demo mode nothing leaves the
    machine, and this is where the notifications can be seen instead."""
    channels = {"email": t("E-mail"), "webhook": t("Webhook"), "apprise": t("SMS or chat")}
    states = {"pending": t("waiting"), "delivered": t("delivered"), "dead": t("failed")}
    intro = html.P(
        t(
            "Demo mode: without a configured e-mail server or webhook secret, notifications "
            "stay on this machine. These are the ones the demo staff would have received."
        ),
        className="summary",
    )
    heading = html.Div([html.H2(t("Demo outbox")), intro])
    if not outbox:
        return html.Section(
            [heading, html.P(t("No notifications yet."), className="empty")],
            className="card demo-outbox",
        )
    header = html.Thead(
        html.Tr(
            [
                html.Th(t("Sent"), scope="col"),
                html.Th(t("To"), scope="col"),
                html.Th(t("Patient"), scope="col"),
                html.Th(t("Message"), scope="col"),
                html.Th(t("State"), scope="col"),
            ]
        )
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(
                        html.Span(
                            format_relative(n.created_at, now, t),
                            title=format_moment(n.created_at, t),
                        ),
                        className="when",
                    ),
                    html.Td(f"{channels.get(n.channel, n.channel)}: {n.address}"),
                    html.Td(names.get(n.patient_id, NO_VALUE)),
                    html.Td(n.title),
                    html.Td(states.get(n.state, n.state)),
                ]
            )
            for n in outbox
        ]
    )
    return html.Section(
        [heading, html.Table([header, body], className="worklist")],
        className="card demo-outbox",
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
    can_act: bool = False
    """The viewer may acknowledge alerts (a clinical role with the patient in their care)."""


def load_patient(conn: psycopg.Connection, *, patient_id: UUID, view: View) -> PatientView | None:
    """The patient page's data, after the one access check (NotVisibleError if refused) and
    with its access-log row, in the transaction that reads it."""
    now, principal = view.now, view.principal
    if _already_logged(conn, view=view, resource=PATIENT_RESOURCE, patient_ids=[patient_id]):
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
            resource=PATIENT_RESOURCE,
            action=Action.READ,
            interface=Interface.DASHBOARD,
            now=now,
        )
    patient = get_patient(conn, patient_id=patient_id, now=now)
    if patient is None:
        return None
    own = principal.kind == "patient" and principal.id == str(patient_id)
    return PatientView(
        patient=patient,
        alerts=unresolved_alerts(conn, patient_ids=[patient_id]),
        readings=readings_for_patient(conn, patient_id=patient_id, since=now - TREND_WINDOW),
        thresholds=thresholds_for(conn, patient_id=patient_id),
        devices=devices_with_status(conn, patient_id=patient_id, at=now),
        looked_at_by=access_log(conn, patient_id=patient_id, limit=50, offset=0) if own else None,
        can_act=principal.kind == "staff" and principal.role in ROLES[Permission.ACT_ON_ALERT],
    )


def do_acknowledge_from_dashboard(
    conn: psycopg.Connection, *, alert_id: int, principal: Principal, now: datetime
) -> None:
    """The nurse's button: the same check, access-log row and lifecycle step as the API's."""
    row = conn.execute("SELECT patient_id FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        raise NotVisibleError
    do_access_patient(
        conn,
        principal=principal,
        permission=Permission.ACT_ON_ALERT,
        patient_id=row[0],
        resource="alert:acknowledge",
        action=Action.UPDATE,
        interface=Interface.DASHBOARD,
        now=now,
    )
    do_acknowledge(conn, alert_id=alert_id, by=principal.uuid, now=now)


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
    own = view.looked_at_by is not None
    return html.Div(
        [
            # A patient has no worklist to go back to: the start page is their own page.
            *(
                []
                if own
                else [dcc.Link(["← ", t("Worklist")], href=links.worklist(), className="back")]
            ),
            html.Div(
                [html.H1(patient.display_name), severity_badge(severity_of(view.alerts), t)],
                className="page-heading patient-heading",
            ),
            facts,
            html.Section(
                [
                    html.H2(t("Unresolved alerts")),
                    _alerts(view.alerts, now=now, t=t, can_act=view.can_act),
                ],
                className="card",
            ),
            html.Section([html.H2(t("Last 7 days")), trend], className="card"),
            html.Section(
                [html.H2(t("Devices")), _devices(view.devices, now=now, t=t)], className="card"
            ),
            *([] if view.looked_at_by is None else [_looked_at_by(view.looked_at_by, t=t)]),
        ]
    )


def role_name(role: str, t: Translator) -> str:
    """A staff role or "patient", in words; an unknown role as it is stored."""
    names = {
        StaffRole.NURSE: t("Nurse"),
        StaffRole.PHYSICIAN: t("Physician"),
        StaffRole.COORDINATOR: t("Coordinator"),
        StaffRole.ADMINISTRATOR: t("Administrator"),
        "patient": t("Patient"),
    }
    return names.get(role, role)


def reason_text(reason_code: str, t: Translator) -> str:
    """Why someone could look, as the patient reads it."""
    reasons = {
        Reason.CARE_TEAM: t("Member of your care team"),
        Reason.OWN_DATA: t("You"),
        Reason.HANDOVER: t("Receiving unit for a hand-over"),
        Reason.ADMINISTRATION: t("Administration"),
        Reason.EMERGENCY: t("Emergency access"),
    }
    return reasons.get(reason_code, reason_code)


def _looked_at_by(entries: list[AccessLogEntry], *, t: Translator) -> Component:
    """The patient's own access log, as helsenorge.no shows it: when, who, as what, from where
    and why. Names come from people, so every one is a text child, never markup."""
    if not entries:
        body: Component = html.P(t("Nobody has looked at your data yet."), className="empty")
    else:
        header = html.Tr(
            [
                html.Th(t("When"), scope="col"),
                html.Th(t("Who"), scope="col"),
                html.Th(t("Role"), scope="col"),
                html.Th(t("Organisation"), scope="col"),
                html.Th(t("Why"), scope="col"),
            ]
        )
        rows = [
            html.Tr(
                [
                    html.Td(format_moment(entry.at, t), className="when"),
                    html.Td(entry.actor_name),
                    html.Td(role_name(entry.role, t)),
                    html.Td(entry.organisation_name or NO_VALUE),
                    html.Td(
                        # The reason an emergency access was opened with is the opener's own
                        # words: a text child, like every name.
                        [reason_text(entry.reason_code, t)]
                        if entry.emergency_reason is None
                        else [
                            reason_text(entry.reason_code, t),
                            html.Q(entry.emergency_reason, className="emergency-reason"),
                        ]
                    ),
                ]
            )
            for entry in entries
        ]
        body = html.Table([html.Thead(header), html.Tbody(rows)], className="access-log")
    return html.Section(
        [html.H2(t("Who has looked at my data")), body], className="card looked-at-by"
    )


def login_page(
    *, t: Translator, failed: bool, ended: bool = False, throttled: bool = False
) -> Component:
    """Password log-in of the built-in issuer; the form posts to /auth/login, which sets the
    session cookie and comes back to the dashboard (here again, with ?failed=1, if refused,
    or ?failed=wait when the log-in throttle holds it back)."""
    notices = []
    if failed:
        notices.append(html.P(t("Wrong user name or password"), role="alert", className="notice"))
    elif throttled:
        notices.append(
            html.P(
                t("Too many log-in attempts. Wait a few minutes and try again."),
                role="alert",
                className="notice",
            )
        )
    elif ended:
        notices.append(
            html.P(t("Your session has ended. Please log in again."), className="notice")
        )
    return html.Section(
        [
            html.H1(t("Log in")),
            *notices,
            html.Form(
                [
                    html.Label(t("User name"), htmlFor="username"),
                    dcc.Input(
                        id="username",
                        name="username",
                        type="text",
                        autoComplete="username",
                        required=True,
                        maxLength=64,
                    ),
                    html.Label(t("Password"), htmlFor="password"),
                    dcc.Input(
                        id="password",
                        name="password",
                        type="password",
                        autoComplete="current-password",
                        required=True,
                        maxLength=1024,
                    ),
                    html.Button(t("Log in"), type="submit"),
                ],
                # The language rides along, so the dashboard after log-in speaks it too.
                action=f"/auth/login?lang={t.language}",
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


def _alerts(alerts: list[Alert], *, now: datetime, t: Translator, can_act: bool) -> Component:
    if not alerts:
        return html.P(t("No unresolved alerts."), className="empty")
    return html.Ul(
        [_alert(alert, now=now, t=t, can_act=can_act) for alert in alerts], className="alerts"
    )


ACKNOWLEDGE: Final = "acknowledge"
"""The type of the acknowledge buttons' pattern-matching ids: {"type": ..., "alert": id}."""


def _alert(alert: Alert, *, now: datetime, t: Translator, can_act: bool = False) -> Component:
    measurement = catalog.lookup(alert.code) if alert.code else None
    rule = RULES_BY_ID.get(alert.rule_id.partition(":")[0])
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
            html.Button(
                t("Acknowledge"),
                id={"type": ACKNOWLEDGE, "alert": alert.id},
                className="acknowledge",
            )
            if can_act and alert.state == "open"
            else None,
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
