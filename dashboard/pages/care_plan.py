"""The care plan page: the plan in force (schedule, limits, self-management text), every
version with who, when, why and what changed; who is responsible and every hand-over; and the
forms to change a limit with a reason and to propose or answer a hand-over."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from uuid import UUID

from dash import dcc, html
from dash.development.base_component import Component

from care.careplan import CarePlan, CarePlanVersion
from care.handover import Handover, ResponsibilityPeriod
from care.staff_work import CarePlanRecord
from core import catalog
from core.i18n import Translator
from core.limits import Limits
from dashboard.formatting import NO_VALUE, format_moment, format_number
from dashboard.labels import measurement_name
from dashboard.links import CarePlanChoice, Links
from dashboard.pages.chips import chips

LIMIT_CODE, LIMIT_RED_LOW, LIMIT_LOW, LIMIT_HIGH, LIMIT_RED_HIGH = (
    "limit-code",
    "limit-red-low",
    "limit-low",
    "limit-high",
    "limit-red-high",
)
LIMIT_REASON, LIMIT_SAVE, PLAN_VERSION = "limit-reason", "limit-save", "plan-version"
HANDOVER_TO, HANDOVER_NOTE, HANDOVER_PROPOSE = "handover-to", "handover-note", "handover-propose"
DECISION_NOTE, HANDOVER_ACCEPT, HANDOVER_DECLINE = (
    "decision-note",
    "handover-accept",
    "handover-decline",
)
LIMIT_BOUNDS: Final = (
    (LIMIT_RED_LOW, "red_low"),
    (LIMIT_LOW, "low"),
    (LIMIT_HIGH, "high"),
    (LIMIT_RED_HIGH, "red_high"),
)
"""Each limit's input and the field of `Limits` it sets, low to high."""


def care_plan_page(
    record: CarePlanRecord, *, t: Translator, links: Links, choice: CarePlanChoice
) -> Component:
    """The page; `choice`: the measurement the limit form edits and the unit a hand-over
    would go to, chosen by links (Dash's dropdowns fail axe-core's rules)."""
    patient = record.patient
    return html.Div(
        [
            dcc.Link(
                ["← ", patient.display_name], href=links.patient(patient.id), className="back"
            ),
            html.H1(t("Care plan and responsibility")),
            html.P(patient.display_name, className="subtitle"),
            _plan(record.plan, t=t) if record.plan else html.P(t("No care plan yet.")),
            *(
                [_limit_form(record.plan, t=t, links=links, measure=choice.measure)]
                if record.plan and record.can_change_plan and record.plan.thresholds
                else []
            ),
            _history(record.versions, record.names, t=t),
            _responsibility(record, t=t, links=links, to=choice.to),
        ],
        className="care-plan-page",
    )


def _plan(plan: CarePlan, *, t: Translator) -> Component:
    schedule = _table(
        [t("Measurement"), t("Every"), t("Late after")],
        [
            [
                measurement_name(m.code, t),
                t("{hours} h").format(hours=m.every_hours),
                t("{hours} h").format(hours=m.grace_hours),
            ]
            for m in plan.measurements
        ],
        caption=t("Schedule"),
    )
    limits = _table(
        [
            t("Measurement"),
            t("Red below"),
            t("Yellow below"),
            t("Yellow above"),
            t("Red above"),
            t("Why"),
        ],
        [
            [
                measurement_name(limits.code, t),
                *(_bound(limits.code, getattr(limits, field), t) for _, field in LIMIT_BOUNDS),
                limits.reason or t("The template's default"),
            ]
            for limits in plan.thresholds
        ],
        caption=t("Limits"),
    )
    return html.Section(
        [
            html.H2(t("Plan in force: version {version}").format(version=plan.version)),
            html.P(
                t("Last changed {when}.").format(when=format_moment(plan.updated_at, t)),
                className="meta",
            ),
            schedule,
            limits,
            html.H3(t("Self-management plan")),
            html.P(plan.self_management or NO_VALUE, className="self-management"),
        ],
        className="card",
    )


def _bound(code: str, value: float | None, t: Translator) -> str:
    measurement = catalog.lookup(code)
    if value is None:
        return NO_VALUE
    return format_number(value, measurement.decimals if measurement else 1, t)


def _limit_form(plan: CarePlan, *, t: Translator, links: Links, measure: str | None) -> Component:
    """One measurement's four limits, starting from those in force, with the reason the
    version history will show."""
    chosen = next((lim for lim in plan.thresholds if lim.code == measure), plan.thresholds[0])
    names = {
        LIMIT_RED_LOW: t("Red below"),
        LIMIT_LOW: t("Yellow below"),
        LIMIT_HIGH: t("Yellow above"),
        LIMIT_RED_HIGH: t("Red above"),
    }
    fields: list[Component] = [
        chips(
            t("Measurement"),
            [
                (
                    measurement_name(limits.code, t),
                    links.care_plan(plan.patient_id, measure=limits.code),
                    limits.code == chosen.code,
                )
                for limits in plan.thresholds
            ],
            t=t,
        ),
        dcc.Store(id=LIMIT_CODE, data=chosen.code),
    ]
    for input_id, field in LIMIT_BOUNDS:
        fields += [
            html.Label(names[input_id], htmlFor=input_id),
            dcc.Input(id=input_id, type="number", step="any", value=getattr(chosen, field)),
        ]
    fields += [
        html.Label(t("Why (shown in the history)"), htmlFor=LIMIT_REASON),
        dcc.Textarea(id=LIMIT_REASON, required=True),
        dcc.Store(id=PLAN_VERSION, data=plan.version),
        html.Button(t("Save the change"), id=LIMIT_SAVE, type="button", className="primary"),
    ]
    return html.Section(
        [
            html.H2(t("Change a limit")),
            html.P(t("Leave a field empty for no limit there."), className="hint"),
            html.Div(fields, className="form-grid"),
        ],
        className="card",
    )


def _history(
    versions: Sequence[CarePlanVersion], names: Mapping[Any, str], *, t: Translator
) -> Component:
    rows = [
        [
            str(version.version),
            format_moment(version.changed_at, t),
            names.get(version.changed_by, NO_VALUE),
            version.reason,
            html.Ul([html.Li(change) for change in _changes(version, t)] or [html.Li(NO_VALUE)]),
        ]
        for version in versions
    ]
    return html.Section(
        [
            html.H2(t("Version history")),
            _table([t("Version"), t("When"), t("Who"), t("Why"), t("What changed")], rows),
        ],
        className="card",
    )


def _changes(version: CarePlanVersion, t: Translator) -> list[str]:
    """Each change in words: old and new limits per measurement, schedule, text, scale."""
    old, new = version.old or {}, version.new
    if not old:
        return [t("Plan created from the template {template}.").format(template=new["template"])]
    changes = []
    before = {row["code"]: row for row in old.get("thresholds", [])}
    after = {row["code"]: row for row in new.get("thresholds", [])}
    for code in sorted(before.keys() | after.keys()):
        if _bounds(before.get(code)) != _bounds(after.get(code)):
            was, now = (
                _limits_text(code, before.get(code), t),
                _limits_text(code, after.get(code), t),
            )
            changes.append(f"{measurement_name(code, t)}: {was} → {now}")
    if old.get("measurements") != new.get("measurements"):
        changes.append(t("The schedule changed."))
    if old.get("self_management") != new.get("self_management"):
        changes.append(t("The self-management plan changed."))
    if old.get("spo2_scale") != new.get("spo2_scale"):
        changes.append(
            t("SpO2 scale {old} → {new}").format(old=old.get("spo2_scale"), new=new["spo2_scale"])
        )
    if old.get("rule_parameters") != new.get("rule_parameters"):
        changes.append(t("Rule settings changed."))
    return changes


def _bounds(row: Mapping[str, Any] | None) -> tuple[Any, ...]:
    return tuple((row or {}).get(field) for _, field in LIMIT_BOUNDS)


def _limits_text(code: str, row: Mapping[str, Any] | None, t: Translator) -> str:
    """Red and yellow limits low to high, as "red < 85, yellow < 90, yellow > 100"."""
    if row is None:
        return t("no limits")
    limits = Limits(code=code, **{field: row.get(field) for _, field in LIMIT_BOUNDS})
    parts = [
        f"{label} {sign} {_bound(code, value, t)}"
        for label, sign, value in (
            (t("red"), "<", limits.red_low),
            (t("yellow"), "<", limits.low),
            (t("yellow"), ">", limits.high),
            (t("red"), ">", limits.red_high),
        )
        if value is not None
    ]
    return ", ".join(parts) or t("no limits")


def _responsibility(
    record: CarePlanRecord, *, t: Translator, links: Links, to: UUID | None
) -> Component:
    return html.Section(
        [
            html.H2(t("Responsibility")),
            _periods(record.responsibility, t=t),
            html.H3(t("Hand-overs")),
            _handovers(record.handovers, t=t),
            *([_propose_form(record, t=t, links=links, to=to)] if record.can_propose else []),
            *([_decide_form(t=t)] if record.can_decide else []),
        ],
        className="card",
    )


def _periods(periods: Sequence[ResponsibilityPeriod], *, t: Translator) -> Component:
    roles = {"responsible": t("Responsible"), "backup": t("Back-up")}
    return _table(
        [t("Unit"), t("Role"), t("From"), t("To")],
        [
            [
                period.organisation_name,
                roles.get(period.role, period.role),
                format_moment(period.valid_from, t),
                format_moment(period.valid_to, t) if period.valid_to else t("now"),
            ]
            for period in reversed(periods)
        ],
    )


def _handovers(handovers: Sequence[Handover], *, t: Translator) -> Component:
    if not handovers:
        return html.P(t("No hand-overs yet."), className="empty")
    states = {
        "proposed": t("Waiting for an answer"),
        "accepted": t("Accepted"),
        "declined": t("Declined"),
        "withdrawn": t("Withdrawn"),
    }
    return _table(
        [t("Proposed"), t("From"), t("To"), t("Note"), t("Answer")],
        [
            [
                f"{format_moment(h.proposed_at, t)}, {h.proposed_by_name}",
                h.from_organisation_name,
                h.to_organisation_name,
                h.note,
                " ".join(
                    part
                    for part in (
                        states.get(h.state, h.state),
                        f"{format_moment(h.decided_at, t)}, {h.decided_by_name}"
                        if h.decided_at and h.decided_by_name
                        else "",
                        h.decision_note or "",
                    )
                    if part
                ),
            ]
            for h in handovers
        ],
    )


def _propose_form(
    record: CarePlanRecord, *, t: Translator, links: Links, to: UUID | None
) -> Component:
    chosen = to if any(unit.id == to for unit in record.units) else None
    return html.Div(
        [
            html.H3(t("Propose a hand-over")),
            chips(
                t("To unit"),
                [
                    (unit.name, links.care_plan(record.patient.id, to=unit.id), unit.id == chosen)
                    for unit in record.units
                ],
                t=t,
            ),
            dcc.Store(id=HANDOVER_TO, data=None if chosen is None else str(chosen)),
            html.Label(t("Note for the receiving unit"), htmlFor=HANDOVER_NOTE),
            dcc.Textarea(id=HANDOVER_NOTE, required=True),
            html.Button(t("Propose"), id=HANDOVER_PROPOSE, type="button", className="primary"),
        ],
        className="form-grid",
    )


def _decide_form(*, t: Translator) -> Component:
    return html.Div(
        [
            html.H3(t("Answer the hand-over")),
            html.Label(t("Note (required to decline)"), htmlFor=DECISION_NOTE),
            dcc.Textarea(id=DECISION_NOTE),
            html.Div(
                [
                    html.Button(
                        t("Accept"), id=HANDOVER_ACCEPT, type="button", className="primary"
                    ),
                    html.Button(t("Decline"), id=HANDOVER_DECLINE, type="button"),
                ],
                className="buttons",
            ),
        ],
        className="form-grid",
    )


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str | None = None
) -> Component:
    """Text cells stay text children: names and notes come from people, never markup."""
    return html.Div(
        html.Table(
            [
                *([html.Caption(caption)] if caption else []),
                html.Thead(html.Tr([html.Th(h, scope="col") for h in headers])),
                html.Tbody([html.Tr([html.Td(cell) for cell in row]) for row in rows]),
            ],
            className="plain-table",
        ),
        className="table-scroll",
    )
