"""The worklist: the viewer's patients, red first, with their newest values."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from dash import dcc, html
from dash.development.base_component import Component

from alerts.outbox import SentNotification
from core import catalog
from core.i18n import Translator
from core.limits import Severity
from dashboard.data.worklist import WorklistRow
from dashboard.formatting import NO_VALUE, format_moment, format_relative, format_value
from dashboard.labels import condition_names, direction_arrow, direction_text
from dashboard.links import Links
from dashboard.pages.badges import severity_badge
from dashboard.pages.outbox import demo_outbox_section


def worklist_page(
    rows: list[WorklistRow],
    *,
    now: datetime,
    t: Translator,
    links: Links,
    outbox: list[SentNotification] | None = None,
) -> Component:
    """The worklist; in demo mode (`outbox` given) the demo outbox below it."""
    counts = {s: sum(1 for row in rows if row.severity == s) for s in Severity}
    summary = html.P(
        [
            t.ngettext("{count} patient", "{count} patients", len(rows)).format(count=len(rows)),
            " · ",
            t("Red: {count}").format(count=counts[Severity.RED]),
            " · ",
            t("Yellow: {count}").format(count=counts[Severity.YELLOW]),
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
    names: dict[UUID, str] = {row.patient.id: row.patient.display_name for row in rows}
    return html.Div([worklist, demo_outbox_section(outbox, names=names, now=now, t=t)])


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
