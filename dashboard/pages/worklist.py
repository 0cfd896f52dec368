"""The worklist: the viewer's patients in the order a nurse works them, each with why it is
flagged, its newest values inside the patient's band, who is on it, and the steps to take.

A list of cards on a grid, not a table: at tablet width the columns fold into the card instead
of running off the side of the screen. The filters live in the address (dashboard.links), so
the refresh every few seconds, a reload and a link to a colleague keep them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from dash import dcc, html
from dash.development.base_component import Component

from alerts.outbox import SentNotification
from core import catalog
from core.i18n import Translator
from core.limits import Severity
from dashboard.data.worklist import (
    CONDITIONS,
    PAGE_SIZE,
    SPARKLINE_WINDOW,
    STANDINGS,
    AlertState,
    Standing,
    Worklist,
    WorklistFilters,
    WorklistRow,
)
from dashboard.formatting import NO_VALUE, format_moment, format_relative, format_value
from dashboard.labels import condition_names, direction_arrow, direction_text
from dashboard.links import Links
from dashboard.pages.alert_steps import alert_steps, notes_list, who_is_on_it
from dashboard.pages.chips import chips
from dashboard.pages.outbox import demo_outbox_section
from dashboard.reasons import reason
from dashboard.sparkline import sparkline

FILTER_NAME: Final = "worklist-name"


def standing_name(standing: Standing, t: Translator) -> str:
    names = {
        Standing.RED: t("Red"),
        Standing.YELLOW: t("Yellow"),
        Standing.MISSING_DATA: t("Missing data"),
        Standing.GREEN: t("Green"),
    }
    return names[standing]


def state_name(state: AlertState, t: Translator) -> str:
    names = {
        AlertState.NEW: t("New"),
        AlertState.ACKNOWLEDGED: t("Acknowledged"),
        AlertState.ASSIGNED: t("Assigned"),
        AlertState.UNASSIGNED: t("Not assigned"),
    }
    return names[state]


def worklist_page(
    worklist: Worklist,
    filters: WorklistFilters,
    *,
    viewer: UUID,
    now: datetime,
    t: Translator,
    links: Links,
    handling: int | None = None,
    outbox: list[SentNotification] | None = None,
) -> Component:
    """The worklist; the forms of the episode led by alert `handling` open; in demo mode
    (`outbox` given) the demo outbox below it."""
    counts = worklist.counts
    summary = html.P(
        [
            t.ngettext("{count} patient", "{count} patients", worklist.total).format(
                count=worklist.total
            ),
            *(
                part
                for standing in STANDINGS[:-1]
                for part in (
                    " · ",
                    f"{standing_name(standing, t)}: {counts[standing]}",
                )
            ),
        ],
        className="summary",
    )
    heading = html.Div([html.H1(t("Worklist")), summary], className="page-heading")
    parts: list[Component] = [heading, _filters(worklist, filters, t=t, links=links)]
    if not worklist.rows:
        parts.append(html.P(t("No patients match."), className="empty"))
    else:
        aria: dict[str, Any] = {"aria-label": t("Patients, most urgent first")}
        parts.append(
            html.Ol(
                [
                    _row(
                        row,
                        worklist,
                        filters,
                        handling=handling,
                        viewer=viewer,
                        now=now,
                        t=t,
                        links=links,
                    )
                    for row in worklist.rows
                ],
                className="worklist",
                **aria,
            )
        )
    if worklist.total > len(worklist.rows):
        more = replace(filters, shown=filters.shown + PAGE_SIZE)
        parts.append(
            html.P(
                [
                    t("Showing {shown} of {total}.").format(
                        shown=len(worklist.rows), total=worklist.total
                    ),
                    " ",
                    dcc.Link(t("Show more"), href=links.worklist(more)),
                ],
                className="summary more",
            )
        )
    section = html.Section(parts, className="card worklist-card")
    if outbox is None:
        return section
    names: dict[UUID, str] = {row.patient.id: row.patient.display_name for row in worklist.rows}
    return html.Div([section, demo_outbox_section(outbox, names=names, now=now, t=t)])


def _filters(
    worklist: Worklist, filters: WorklistFilters, *, t: Translator, links: Links
) -> Component:
    """Each filter a row of links (dashboard/pages/chips.py); the name search changes the
    address through callbacks/worklist. Any change starts the list from its first page."""

    def href(narrowed: WorklistFilters) -> str:
        return links.worklist(replace(narrowed, shown=PAGE_SIZE))

    def all_or(chosen: object, everything: WorklistFilters) -> tuple[str, str, bool]:
        return t("All"), href(everything), chosen is None

    return html.Div(
        [
            html.Label(
                [
                    html.Span(t("Search by name"), className="filter-label"),
                    dcc.Input(
                        id=FILTER_NAME,
                        type="search",
                        value=filters.name,
                        debounce=True,
                        persistence=filters.name or "empty",
                        persistence_type="memory",
                    ),
                ],
                className="filter filter-name",
            ),
            chips(
                t("Show"),
                [
                    (t("Assigned to me"), href(replace(filters, mine=not filters.mine)),
                     filters.mine),
                    (t("Not acknowledged"),
                     href(replace(filters, unacknowledged=not filters.unacknowledged)),
                     filters.unacknowledged),
                ],
                t=t,
            ),
            chips(
                t("Unit"),
                [all_or(filters.unit, replace(filters, unit=None))]
                + [(unit.name, href(replace(filters, unit=unit.id)), filters.unit == unit.id)
                   for unit in worklist.units],
                t=t,
            ),
            chips(
                t("Condition"),
                [all_or(filters.condition, replace(filters, condition=None))]
                + [(condition_names([c], t), href(replace(filters, condition=c)),
                    filters.condition == c) for c in CONDITIONS],
                t=t,
            ),
            chips(
                t("Severity"),
                [all_or(filters.standing, replace(filters, standing=None))]
                + [(standing_name(s, t), href(replace(filters, standing=s)),
                    filters.standing == s) for s in STANDINGS],
                t=t,
            ),
            chips(
                t("State"),
                [all_or(filters.state, replace(filters, state=None))]
                + [(state_name(s, t), href(replace(filters, state=s)), filters.state == s)
                   for s in AlertState],
                t=t,
            ),
        ],
        className="worklist-filters",
        role="search",
    )  # fmt: skip


def _row(  # the row, the list it is in, and how the page is drawn
    row: WorklistRow,
    worklist: Worklist,
    filters: WorklistFilters,
    *,
    handling: int | None,
    viewer: UUID,
    now: datetime,
    t: Translator,
    links: Links,
) -> Component:
    patient = row.patient
    last = row.last_measured_at
    who: list[Component | str] = [patient.responsible_unit or t("No responsible unit")]
    if row.handover is not None:
        who.append(
            html.Span(
                t("Hand-over to {unit} proposed {when}").format(
                    unit=row.handover.to_organisation_name,
                    when=format_relative(row.handover.proposed_at, now, t),
                ),
                title=format_moment(row.handover.proposed_at, t),
                className="handover",
            )
        )
    cells: list[Component] = [
        html.Div(
            html.Span(standing_name(row.standing, t), className=f"badge badge-{row.standing}"),
            className="wl-standing",
        ),
        html.Div(
            [
                html.H2(
                    dcc.Link(patient.display_name, href=links.patient(patient.id)),
                    className="name",
                ),
                html.Span(condition_names(patient.conditions, t), className="muted"),
                html.Span(who, className="wl-unit"),
            ],
            className="wl-patient",
        ),
        html.Div(_reasons(row, now=now, t=t), className="wl-reason"),
        html.Div(_latest_values(row, now=now, t=t), className="wl-values"),
        html.Div(_states(row, worklist, now=now, t=t), className="wl-state"),
        html.Div(
            [
                html.Span(t("Latest reading"), className="cell-label"),
                NO_VALUE
                if last is None
                else html.Span(format_relative(last, now, t), title=format_moment(last, t)),
            ],
            className="wl-when",
        ),
    ]
    if worklist.can_act and row.episodes:
        cells.append(
            html.Div(
                [
                    html.Div(
                        [
                            html.P(reason(episode.lead, now=now, t=t), className="step-for"),
                            alert_steps(
                                episode,
                                viewer=viewer,
                                colleagues=worklist.colleagues,
                                notes=row.notes.get(episode.id, []),
                                t=t,
                                open_href=None
                                if handling == episode.lead.id
                                else links.worklist(filters, handle=episode.lead.id),
                            ),
                            *(
                                [dcc.Link(t("Close"), href=links.worklist(filters))]
                                if handling == episode.lead.id
                                else []
                            ),
                        ],
                        className="wl-episode",
                    )
                    for episode in row.episodes
                ],
                className="wl-steps",
            )
        )
    return html.Li(cells, className=f"worklist-row row-{row.standing}", key=str(patient.id))


def _reasons(row: WorklistRow, *, now: datetime, t: Translator) -> Component:
    if not row.episodes:
        return html.Span(t("No unresolved alerts"), className="muted")
    return html.Ul(
        [
            html.Li(reason(alert, now=now, t=t), className=f"reason reason-{alert.severity}")
            for alert in row.alerts
        ],
        className="reasons",
    )


def _states(
    row: WorklistRow, worklist: Worklist, *, now: datetime, t: Translator
) -> list[Component]:
    """Per episode: who is on it; and the newest note, so the next nurse reads it here."""
    found: list[Component] = []
    for episode in row.episodes:
        found += who_is_on_it(
            episode,
            names=worklist.names,
            snooze=worklist.snoozes.get(episode.id),
            now=now,
            t=t,
        )
        notes = row.notes.get(episode.id, [])
        latest = notes_list(notes[-1:], t=t)
        if latest is not None:
            found.append(latest)
    return found


def _latest_values(row: WorklistRow, *, now: datetime, t: Translator) -> Component | str:
    if not row.latest:
        return NO_VALUE
    # Only a clinical alert is about the value; a missing reading's is about its absence.
    # The most severe alert on a value marks it (the dict keeps the last one written).
    alerted = {
        a.code: a
        for a in sorted(row.alerts, key=lambda a: Severity(a.severity).rank)
        if a.code is not None and a.category == "clinical"
    }
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
        line = sparkline(
            row.recent.get(reading.code, []),
            row.limits.get(reading.code),
            since=now - SPARKLINE_WINDOW,
            until=now,
            label=t("{measurement}, last 7 days").format(measurement=measurement.name(t.language)),
        )
        items.append(
            html.Li(
                [
                    html.Span(measurement.name(t.language), className="measure-name"),
                    html.Span(value, className="measure-value"),
                    *([] if line is None else [line]),
                ],
                className=None if alert is None else f"alerted alerted-{Severity(alert.severity)}",
            )
        )
    return html.Ul(items, className="values")
