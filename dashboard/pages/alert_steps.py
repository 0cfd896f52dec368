"""Who is on an episode, and every step a nurse takes on it from the screen, the same on the
worklist row and on the patient page's alert card.

Each step is a real button, each field a labelled input. The forms open by a link that puts
the episode in the address (``handle=<lead alert id>``), so the refresh every few seconds
keeps them open, and the fields keep what was typed (Dash's persistence, keyed by the
episode's version, so a step taken clears them). The callbacks in
dashboard/callbacks/alerts.py find the fields of the clicked episode by its lead alert's id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from dash import dcc, html
from dash.development.base_component import Component

from alerts.queries import Episode
from core.i18n import Translator
from dashboard.data.alert_steps import Colleague, Note, Snooze
from dashboard.formatting import format_moment, format_relative

STEP: Final = "alert-step"
"""The buttons' pattern-matching ids: {"type": STEP, "step": <step>, "alert": <lead alert id>}."""
ASSIGNEE: Final = "alert-assignee"
NOTE: Final = "alert-note"
SNOOZE_REASON: Final = "alert-snooze-reason"
SNOOZE_HOURS: Final = "alert-snooze-hours"
OUTCOME: Final = "alert-outcome"
RESOLUTION_NOTE: Final = "alert-resolution-note"
FIELDS: Final = (ASSIGNEE, NOTE, SNOOZE_REASON, SNOOZE_HOURS, OUTCOME, RESOLUTION_NOTE)
"""Every field's type; each field's id is {"type": <type>, "alert": <lead alert id>}."""

SNOOZE_CHOICES: Final = (1, 4, 24, 72, 168)
"""Hours a snooze may last, within alerts.actions' one minute to seven days."""


def outcome_names(t: Translator) -> dict[str, str]:
    """alerts.actions.Outcome in words, in the order the resolve form offers them."""
    return {
        "contacted_patient": t("Contacted the patient"),
        "changed_treatment": t("Changed the treatment"),
        "referred": t("Referred"),
        "no_action_needed": t("No action needed"),
        "technical_fixed": t("Technical problem fixed"),
        "false_alarm": t("False alarm"),
    }


def route_name(route: str, t: Translator) -> str:
    names = {
        "responsible": t("Responsible unit"),
        "backup": t("Back-up unit"),
        "on_call": t("On call"),
        "out_of_hours": t("Out of hours"),
    }
    return names.get(route, route)


def who_is_on_it(
    episode: Episode,
    *,
    names: dict[UUID, str],
    snooze: Snooze | None,
    now: datetime,
    t: Translator,
) -> list[Component]:
    """The episode's state in words: new and for how long, or acknowledged by whom and when;
    to whom it is assigned; whether it is snoozed and why; and how far it has escalated."""
    parts: list[Component] = []
    if episode.state == "open":
        parts.append(
            html.Span(
                t("New, waiting {age}").format(age=_age(episode.created_at, now, t)),
                title=format_moment(episode.created_at, t),
                className="step-state state-new",
            )
        )
    else:
        parts.append(
            html.Span(
                t("Open for {age}").format(age=_age(episode.created_at, now, t)),
                title=format_moment(episode.created_at, t),
                className="step-state state-age",
            )
        )
    if episode.state != "open" and episode.acknowledged_at is not None:
        by = names.get(episode.acknowledged_by) if episode.acknowledged_by else None
        parts.append(
            html.Span(
                t("Acknowledged by {name}, {when}").format(
                    name=by or t("someone"), when=format_relative(episode.acknowledged_at, now, t)
                ),
                title=format_moment(episode.acknowledged_at, t),
                className="step-state state-acknowledged",
            )
        )
    if episode.assigned_to is not None:
        parts.append(
            html.Span(
                t("Assigned to {name}").format(name=names.get(episode.assigned_to, t("someone"))),
                className="step-state state-assigned",
            )
        )
    if snooze is not None:
        parts.append(
            html.Span(
                t("Snoozed until {time}: {reason}").format(
                    time=format_moment(snooze.until, t), reason=snooze.reason
                ),
                className="step-state state-snoozed",
            )
        )
    if episode.escalation_level > 0:
        parts.append(
            html.Span(
                t("Escalated, step {step}: {route}").format(
                    step=episode.escalation_level, route=route_name(episode.route, t)
                ),
                className="step-state state-escalated",
            )
        )
    return parts


def _age(since: datetime, now: datetime, t: Translator) -> str:
    minutes = max(int((now - since).total_seconds() // 60), 0)
    if minutes < 60:
        return t.ngettext("{count} minute", "{count} minutes", minutes).format(count=minutes)
    return _hours_or_days(minutes // 60, t)


def notes_list(notes: list[Note], *, t: Translator) -> Component | None:
    """The notes as text (Dash escapes text children: markup in a note shows as written)."""
    if not notes:
        return None
    aria: dict[str, Any] = {"aria-label": t("Notes")}  # no Python keyword has a hyphen
    return html.Ul(
        [
            html.Li(
                [
                    html.Span(
                        f"{note.author}, {format_moment(note.at, t)}:", className="note-meta"
                    ),
                    " ",
                    html.Span(note.text, className="note-text"),
                ]
            )
            for note in notes
        ],
        className="notes",
        **aria,
    )


def alert_steps(
    episode: Episode,
    *,
    viewer: UUID,
    colleagues: list[Colleague],
    notes: list[Note],
    t: Translator,
    open_href: str | None,
) -> Component:
    """The steps on one episode; each addressed through its lead alert, as the API's are.

    Acknowledge and assign-to-me are one click. The forms (assign, note, snooze, resolve)
    show when the address names the episode (`open_href` is None then; else it is the link
    that opens them): kept in the address, they stay open through the refresh."""
    alert = episode.lead.id
    version = f"{episode.updated_at.isoformat()}/{len(notes)}"

    def field_id(kind: str) -> dict[str, object]:
        return {"type": kind, "alert": alert}

    def button(step: str, text: str, *, primary: bool = False) -> Component:
        return html.Button(
            text,
            id={"type": STEP, "step": step, "alert": alert},
            type="button",
            className="step-button primary" if primary else "step-button",
        )

    def kept(component: type[Component], kind: str, **props: object) -> Component:
        return component(id=field_id(kind), persistence=version, persistence_type="memory", **props)

    everyone = [
        {"label": t("Me ({name})").format(name=c.name) if c.id == viewer else c.name,
         "value": str(c.id)}
        for c in colleagues
    ]  # fmt: skip
    if not any(c.id == viewer for c in colleagues):
        everyone.insert(0, {"label": t("Me"), "value": str(viewer)})
    quick = (
        [button("acknowledge", t("Acknowledge"), primary=True)] if episode.state == "open" else []
    )
    if episode.assigned_to != viewer:
        quick.append(button("assign-me", t("Assign to me")))
    if open_href is not None:
        quick.append(dcc.Link(t("Note, assign, snooze or resolve"), href=open_href))
        return html.Div(html.Div(quick, className="step-quick"), className="alert-steps")
    sections = [
        (
            t("Assign to a colleague"),
            [
                html.Fieldset(
                    [
                        html.Legend(t("Assign to")),
                        kept(dcc.RadioItems, ASSIGNEE, options=everyone, value=str(viewer)),
                    ]
                ),
                button("assign", t("Assign")),
            ],
        ),
        (
            t("Add a note"),
            [
                html.Label([t("Note"), kept(dcc.Textarea, NOTE, maxLength=4000, autoFocus=True)]),
                button("note", t("Save note")),
            ],
        ),
        (
            t("Snooze"),
            [
                html.P(
                    t(
                        "Mutes repeats of this alert only (its measurement and direction);"
                        " a red finding still notifies."
                    ),
                    className="hint",
                ),
                html.Label(
                    [t("Reason"), kept(dcc.Input, SNOOZE_REASON, type="text", maxLength=500)]
                ),
                html.Fieldset(
                    [
                        html.Legend(t("For")),
                        kept(
                            dcc.RadioItems,
                            SNOOZE_HOURS,
                            options=[
                                {"label": _hours_or_days(hours, t), "value": hours}
                                for hours in SNOOZE_CHOICES
                            ],
                            value=SNOOZE_CHOICES[1],
                        ),
                    ]
                ),
                button("snooze", t("Snooze")),
            ],
        ),
        (
            t("Resolve"),
            [
                html.Fieldset(
                    [
                        html.Legend(t("Outcome")),
                        kept(
                            dcc.RadioItems,
                            OUTCOME,
                            options=[
                                {"label": name, "value": code}
                                for code, name in outcome_names(t).items()
                            ],
                        ),
                    ]
                ),
                html.Label(
                    [t("What was done"), kept(dcc.Textarea, RESOLUTION_NOTE, maxLength=4000)]
                ),
                button("resolve", t("Resolve")),
            ],
        ),
    ]
    return html.Div(
        [
            html.Div(quick, className="step-quick"),
            *(
                html.Section([html.H3(title), *body], className="step-form")
                for title, body in sections
            ),
        ],
        className="alert-steps alert-steps-open",
    )


def _hours_or_days(hours: int, t: Translator) -> str:
    """Hours up to two days, whole days beyond."""
    if hours < 48:
        return t.ngettext("{count} hour", "{count} hours", hours).format(count=hours)
    days = hours // 24
    return t.ngettext("{count} day", "{count} days", days).format(count=days)
