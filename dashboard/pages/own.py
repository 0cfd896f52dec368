"""The patient's own page (their start page after log-in), spoken to them in plain language:
their latest values each with a sentence tied to their own targets and self-management plan,
what is asked of them today, the daily check to fill in, their plan, their last 30 days, and
who has looked at their data.

Never a nurse's working state or a statistic: the patient reads the plan's zone of each value
(within, outside, far outside their target) in words and with a symbol, never by colour alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from dash import dcc, html
from dash.development.base_component import Component

from alerts.library.symptoms import CAT_ITEMS
from care.careplan import PlanLimits
from care.models import Condition
from core import catalog
from core.i18n import Translator
from core.limits import Severity
from dashboard.data.own import (
    CAT,
    DAILY_CHECK,
    OWN_TREND_WINDOW,
    LatestValue,
    OwnView,
    PlanSteps,
    ScheduleItem,
)
from dashboard.data.trend import PlanPeriod, Trend, flow_z_default
from dashboard.figures import trend_figure
from dashboard.formatting import format_number, format_relative, format_value, unit_symbol
from dashboard.pages.access_log import looks_section
from dashboard.ranges import TrendRange

DAILY_QUESTIONS: Final = ("more_breathless", "more_swelling", "more_cough")
"""The daily check's questions (alerts/library/symptoms.py QUESTIONS), in the form's order."""
CAT_QUESTIONS: Final = tuple(f"q{n}" for n in range(1, CAT_ITEMS + 1))
QUESTIONS: Final = {DAILY_CHECK: DAILY_QUESTIONS, CAT: CAT_QUESTIONS}
ANSWER: Final = "questionnaire-answer"
"""The answer buttons' pattern-matching ids: {"type", "kind", "question", "answer"}."""
CHOICE: Final = "questionnaire-choice"
CHOSEN: Final = "questionnaire-chosen"
"""Per question ({"type", "kind", "question"}): the buttons' container, and the answer chosen
(a dcc.Store)."""
SEND: Final = "questionnaire-send"
STATUS: Final = "questionnaire-status"
"""Per questionnaire ({"type", "kind"}): its Send button and what became of the answers."""
YES, NO = "yes", "no"
REMIND_BY: Final = "remind-by"
"""The reminder choice's buttons ({"type", "channel"}: email, apprise or none)."""
REMINDER_ADDRESS: Final = "reminder-address"
REMINDER_CHOICE: Final = "reminder-choice"
REMINDER_STATUS: Final = "reminder-status"
DASH: Final = "\u2013"
_ZONE_SYMBOLS: Final = {Severity.GREEN: "✓", Severity.YELLOW: "!", Severity.RED: "!!"}


def own_page(view: OwnView, *, now: datetime, t: Translator) -> Component:
    return html.Div(
        [
            html.H1(t("My follow-up")),
            html.P(
                t("Here you see your latest values, what to do today and your plan."),
                className="lead",
            ),
            _section("my-values", t("My latest values"), _latest(view, now=now, t=t)),
            _section("my-today", t("Today"), _today(view.schedule, now=now, t=t)),
            _section("my-check", t("How are you today?"), _questionnaires(view, t=t)),
            _section("my-plan", t("My plan"), _plan(view.steps, t=t)),
            _section("my-reminders", t("Reminders"), _reminders(view.reminders, t=t)),
            _section("my-trends", t("My values, last 30 days"), _trends(view, now=now, t=t)),
            looks_section(view.looks, t=t),
        ],
        className="own-view",
    )


def _section(key: str, heading: str, body: list[Component]) -> Component:
    labelled: dict[str, Any] = {"aria-labelledby": f"{key}-heading"}
    return html.Section(
        [html.H2(heading, id=f"{key}-heading"), *body], className=f"card {key}", **labelled
    )


# --- latest values ---------------------------------------------------------------------------


def _latest(view: OwnView, *, now: datetime, t: Translator) -> list[Component]:
    if not view.latest:
        return [html.P(t("No values in the last 30 days."), className="empty")]
    return [
        html.Ul(
            [_value(v, view.steps, now=now, t=t) for v in view.latest], className="my-values-list"
        )
    ]


def _value(value: LatestValue, steps: PlanSteps, *, now: datetime, t: Translator) -> Component:
    measurement = value.measurement
    sentences = value_sentences(value, steps, t=t)
    return html.Li(
        [
            html.H3(measurement.name(t.language)),
            html.P(
                [
                    html.Span(_ZONE_SYMBOLS[value.zone], className="zone-symbol", **_hidden()),
                    " ",
                    zone_label(value, t),
                ],
                className="zone-label",
            ),
            html.P(
                [
                    html.Strong(format_value(measurement, value.reading.value, t)),
                    " ",
                    html.Span(
                        t("measured {when}").format(
                            when=format_relative(value.reading.measured_at, now, t)
                        ),
                        className="when",
                    ),
                ],
                className="reading",
            ),
            *[html.P(sentence, className="advice") for sentence in sentences],
        ],
        className=f"my-value zone-{value.zone}",
    )


def _polite() -> dict[str, Any]:
    """A region whose news a screen reader reads out when it is free."""
    return {"aria-live": "polite"}


def _hidden() -> dict[str, Any]:
    """A symbol that repeats the words next to it: screen readers skip it."""
    return {"aria-hidden": "true"}


def zone_label(value: LatestValue, t: Translator) -> str:
    if value.limits is None and value.weight_change is None:
        return t("No target in your plan")
    labels = {
        Severity.GREEN: t("Within your target"),
        Severity.YELLOW: t("Outside your target"),
        Severity.RED: t("Far outside your target"),
    }
    return labels[value.zone]


def value_sentences(value: LatestValue, steps: PlanSteps, *, t: Translator) -> list[str]:
    """What the value means for the patient, in short sentences: the target it is held
    against, then, outside it, the step of their own plan to follow and the one for getting
    worse."""
    sentences: list[str] = []
    change = value.weight_change
    if change is not None:
        kg = format_number(abs(change.gain_kg), 1, t)
        if change.gain_kg <= 0:
            sentences.append(
                t("Your weight has not gone up in the last {days} days.").format(days=change.days)
            )
        else:
            sentences.append(
                t("Your weight has gone up {kg} kg in {days} days.").format(kg=kg, days=change.days)
            )
            if value.zone is Severity.GREEN:
                limit = format_number(change.limit_kg, 1, t)
                sentences.append(
                    t("That is less than the {limit} kg your plan allows.").format(limit=limit)
                )
    target = _target(value.measurement, value.limits, t)
    if target is not None:
        sentences.append(_against_target(value, target, t))
    elif change is None:
        sentences.append(t("Your plan sets no target for this value. Your care team follows it."))
    if value.zone is not Severity.GREEN:
        sentences += _plan_advice(value.zone, steps, t)
    return sentences


def _against_target(value: LatestValue, target: str, t: Translator) -> str:
    if value.zone is Severity.GREEN or value.direction is None:
        return t("That is within the target your care team set for you ({target}).").format(
            target=target
        )
    texts = {
        (Severity.YELLOW, "low"): t("That is below the target your care team set for you."),
        (Severity.YELLOW, "high"): t("That is above the target your care team set for you."),
        (Severity.RED, "low"): t("That is well below your target."),
        (Severity.RED, "high"): t("That is well above your target."),
    }
    return f"{texts[(value.zone, value.direction)]} {t('Your target: {target}.')}".format(
        target=target
    )


def _target(
    measurement: catalog.Measurement, limits: PlanLimits | None, t: Translator
) -> str | None:
    """The plan's target (its inner, yellow limits) in words: "88\u201392 %", "at least 94 %"."""
    if limits is None:
        return None
    unit = unit_symbol(measurement)

    def number(limit: float) -> str:
        return format_number(limit, measurement.decimals, t)

    if limits.low is not None and limits.high is not None:
        return f"{number(limits.low)}\u2013{number(limits.high)}\u00a0{unit}"
    if limits.low is not None:
        return t("at least {value}").format(value=f"{number(limits.low)}\u00a0{unit}")
    if limits.high is not None:
        return t("at most {value}").format(value=f"{number(limits.high)}\u00a0{unit}")
    return None


def _plan_advice(zone: Severity, steps: PlanSteps, t: Translator) -> list[str]:
    """The product chooses the step; the words are the plan's own."""
    if steps.act is None:
        return [t("Do what your plan below says for this.")]
    follow = (
        t("Follow step {step} of your plan now: {text}")
        if zone is Severity.RED
        else t("Follow step {step} of your plan: {text}")
    )
    advice = [follow.format(step=steps.act, text=steps.steps[steps.act - 1])]
    if steps.emergency is not None:
        advice.append(t("If you get worse: {text}").format(text=steps.steps[steps.emergency - 1]))
    return advice


# --- today -----------------------------------------------------------------------------------


def _today(schedule: list[ScheduleItem], *, now: datetime, t: Translator) -> list[Component]:
    if not schedule:
        return [html.P(t("Your care team has not made a schedule for you yet."), className="empty")]
    missing = [item_name(item, t) for item in schedule if not item.done]
    summary = (
        t("Still missing today: {items}.").format(items=", ".join(missing))
        if missing
        else t("You have done everything for today. Thank you!")
    )
    rows = [
        html.Li(
            [
                html.Span("✓" if item.done else "○", className="done-symbol", **_hidden()),
                " ",
                html.Strong(item_name(item, t)),
                html.Span(f" {DASH} {cadence(item.every_hours, t)}", className="cadence"),
                html.Span(f" {DASH} {_status(item, now=now, t=t)}", className="status"),
            ],
            className="done" if item.done else "missing",
        )
        for item in schedule
    ]
    return [html.P(summary, className="summary"), html.Ul(rows, className="schedule")]


def item_name(item: ScheduleItem, t: Translator) -> str:
    if item.code is None:
        return t("Daily check")
    measurement = catalog.lookup(item.code)
    return item.code if measurement is None else measurement.name(t.language)


def cadence(every_hours: int, t: Translator) -> str:
    if every_hours == 24:
        return t("every day")
    if every_hours == 12:
        return t("twice a day")
    if every_hours == 24 * 7:
        return t("every week")
    if every_hours % 24 == 0:
        return t("every {days} days").format(days=every_hours // 24)
    return t("every {hours} hours").format(hours=every_hours)


def _status(item: ScheduleItem, *, now: datetime, t: Translator) -> str:
    if item.done and item.last_at is not None:
        return t("done {when}").format(when=format_relative(item.last_at, now, t))
    if item.every_hours <= 24:
        return t("not done yet today")
    return t("due now")


# --- the questionnaires ---------------------------------------------------------------------


def _questionnaires(view: OwnView, *, t: Translator) -> list[Component]:
    """The daily check, and for COPD the CAT. Each question is a group of toggle buttons (a
    native radio group in Dash's RadioItems comes wrapped in a listbox, which screen readers
    cannot use)."""
    daily = {
        "more_breathless": t("Are you more short of breath than usual?"),
        "more_swelling": t("Are your legs or feet more swollen than usual?"),
        "more_cough": t("Are you coughing more than usual?"),
    }
    check = next((item for item in view.schedule if item.code is None), None)
    answered = (
        [
            html.P(
                t("You have answered today. You can answer again if something has changed."),
                className="answered",
            )
        ]
        if check is not None and check.done
        else []
    )
    parts = [
        html.P(t("Three short questions. Your care team reads your answers.")),
        *answered,
        _form(DAILY_CHECK, [html.Legend(daily[q]) for q in DAILY_QUESTIONS], t=t),
    ]
    if Condition.COPD in view.patient.conditions:
        # Folded away: answered now and then, it should not make the page long every day.
        parts.append(
            html.Details(
                [
                    html.Summary(t("COPD questionnaire (CAT)")),
                    html.P(
                        t(
                            "Eight questions about how your lung disease affects you. "
                            "For each, choose a number from 0 to 5."
                        )
                    ),
                    _form(CAT, [_cat_legend(low, high) for low, high in _cat_items(t)], t=t),
                ],
                className="cat",
            )
        )
    return parts


def _cat_items(t: Translator) -> list[tuple[str, str]]:
    """The CAT's eight items as their two ends, in plain words."""
    return [
        (t("I never cough"), t("I cough all the time")),
        (t("I have no phlegm in my chest"), t("My chest is full of phlegm")),
        (t("My chest does not feel tight"), t("My chest feels very tight")),
        (
            t("I do not get out of breath walking up a hill or one flight of stairs"),
            t("I get very out of breath walking up a hill or one flight of stairs"),
        ),
        (t("I can do everything I want at home"), t("I am very limited in what I do at home")),
        (
            t("I feel safe leaving my home despite my lung disease"),
            t("I do not feel safe leaving my home because of my lung disease"),
        ),
        (t("I sleep well"), t("I sleep badly because of my lung disease")),
        (t("I have lots of energy"), t("I have no energy at all")),
    ]


def _cat_legend(low: str, high: str) -> Component:
    return html.Legend([html.Span(f"0 = {low}"), html.Br(), html.Span(f"5 = {high}")])


def _form(kind: str, legends: list[Component], *, t: Translator) -> Component:
    fieldsets = [
        html.Fieldset(
            [
                legend,
                html.Div(
                    answer_buttons(kind, question, None, t=t),
                    id={"type": CHOICE, "kind": kind, "question": question},
                    className="answer-buttons",
                ),
                dcc.Store(id={"type": CHOSEN, "kind": kind, "question": question}),
            ],
            className="question",
        )
        for question, legend in zip(QUESTIONS[kind], legends, strict=True)
    ]
    return html.Div(
        [
            *fieldsets,
            html.Button(
                t("Send answers") if kind == DAILY_CHECK else t("Send CAT answers"),
                id={"type": SEND, "kind": kind},
                className="send",
            ),
            html.Div(id={"type": STATUS, "kind": kind}, **_polite()),
        ],
        className=f"questionnaire questionnaire-{kind}",
    )


def answer_buttons(
    kind: str, question: str, chosen: str | None, *, t: Translator
) -> list[Component]:
    """The answers to one question; the chosen one pressed, said in words and with a tick."""
    options = (
        [(YES, t("Yes")), (NO, t("No"))]
        if kind == DAILY_CHECK
        else [(str(n), str(n)) for n in range(6)]
    )
    buttons: list[Component] = []
    for answer, label in options:
        pressed = answer == chosen
        state: dict[str, Any] = {"aria-pressed": "true" if pressed else "false"}
        buttons.append(
            html.Button(
                [html.Span("✓ " if pressed else "", **_hidden()), label],
                id={"type": ANSWER, "kind": kind, "question": question, "answer": answer},
                type="button",
                className="answer chosen" if pressed else "answer",
                **state,
            )
        )
    return buttons


# --- reminders ------------------------------------------------------------------------------


def _reminders(chosen: tuple[str, str] | None, *, t: Translator) -> list[Component]:
    """How the patient wants to be reminded of a measurement that has not come: an address,
    the choice now, and one button per way (toggle buttons, as the questionnaires')."""
    channel, address = chosen or ("none", "")
    return [
        html.P(
            t(
                "If a measurement your plan asks for has not come, we remind you before your "
                "care team calls you. Reminders never come at night."
            )
        ),
        html.Label(
            [
                t("E-mail address, or Apprise address for SMS or push"),
                dcc.Input(
                    id=REMINDER_ADDRESS, type="text", value=address, maxLength=2000, debounce=True
                ),
            ],
            className="reminder-address",
        ),
        html.Div(reminder_choice(channel, address, t=t), id=REMINDER_CHOICE),
        html.Div(id=REMINDER_STATUS, **_polite()),
    ]


def reminder_choice(channel: str, address: str, *, t: Translator) -> list[Component]:
    """The way chosen now, in words, and the buttons to choose, the chosen one pressed."""
    now = {
        "none": t("You get no reminders. If a measurement is missing, your care team calls."),
        "email": t("Reminders go by e-mail to {address}."),
        "apprise": t("Reminders go by SMS or push to {address}."),
    }[channel].format(address=address)
    ways = [
        ("email", t("Remind me by e-mail")),
        ("apprise", t("Remind me by SMS or push")),
        ("none", t("No reminders")),
    ]
    buttons: list[Component] = []
    for way, label in ways:
        pressed: dict[str, Any] = {"aria-pressed": "true" if way == channel else "false"}
        buttons.append(
            html.Button(
                [html.Span("✓ " if way == channel else "", **_hidden()), label],
                id={"type": REMIND_BY, "channel": way},
                type="button",
                className="answer chosen" if way == channel else "answer",
                **pressed,
            )
        )
    return [html.P(now, className="reminder-now"), html.Div(buttons, className="answer-buttons")]


# --- the plan and the trend ------------------------------------------------------------------


def _plan(steps: PlanSteps, *, t: Translator) -> list[Component]:
    if not steps.steps:
        return [html.P(t("You have no plan yet. Ask your care team."), className="empty")]
    return [
        html.P(t("Your care team wrote this plan for you.")),
        html.Ol([html.Li(step) for step in steps.steps], className="plan-steps"),
    ]


def _trends(view: OwnView, *, now: datetime, t: Translator) -> list[Component]:
    trend = Trend(
        range=TrendRange(OWN_TREND_WINDOW.days),
        since=now - OWN_TREND_WINDOW,
        until=now,
        readings=view.readings,
        days=None,
        plans=[PlanPeriod(starts=None, limits=view.plan.thresholds if view.plan else ())],
        events=[],
        flow_z=flow_z_default(),
    )
    figure = trend_figure(trend, t=t, revision=f"own-{view.patient.id}")
    if figure is None:
        return [html.P(t("No values in the last 30 days."), className="empty")]
    # Spoken to the patient: the limits are theirs.
    names = {
        t("Patient's limits"): t("Your target"),
        t("Patient's red limits"): t("Your outer limits"),
    }
    for trace in figure["data"]:
        trace["name"] = names.get(trace.get("name", ""), trace.get("name"))
    # On a phone the legend goes under the charts, clear of the first chart's title.
    layout = figure["layout"]
    layout["font"] = {**layout["font"], "size": 15}
    layout["margin"] = {**layout["margin"], "l": 48, "r": 8, "b": 120}
    layout["legend"] = {"orientation": "h", "yanchor": "top", "y": -0.14, "x": 0, "xanchor": "left"}
    return [
        html.P(
            t(
                "The dashed lines show the targets your care team set for you. "
                "A value outside them has a diamond around it."
            )
        ),
        dcc.Graph(
            id="own-trend",
            figure=figure,
            config={"displaylogo": False, "displayModeBar": False, "responsive": True},
        ),
    ]
