"""The patient's own page: their latest values judged against their own care plan, their
schedule for today, and who has looked at their data (one row per look).

Everything here is the patient's own care plan and readings, read after the one access check
(care.access) with its access-log row. Nothing here is a nurse's working state: no alert, no
acknowledgement, no escalation, no statistic. A relative whose consent covers it sees the same
page (care/proxies.py), and fills in the questionnaires only if the consent allows that too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Final
from uuid import UUID

import psycopg

from alerts.library.trends import WINDOW_SLACK
from alerts.reminders import reminder_channel
from care.access import (
    AccessLogEntry,
    Action,
    Interface,
    Permission,
    Reason,
    access_log,
    do_access_patient,
    do_log_access,
    proxy_allows,
)
from care.careplan import CarePlan, PlanLimits, get_care_plan
from care.models import Patient
from care.proxies import ProxiedPatient, ProxyConsent, consents_of_patient, proxied_patients
from care.service import get_patient
from care.templates import WEIGHT
from core import catalog
from core.clock import DISPLAY_TIMEZONE
from core.limits import Severity
from core.readings import Reading, readings_for_patient
from core.rule_parameters import TUNABLES
from dashboard.data.viewing import LOG_COVERS, View

OWN_RESOURCE: Final = "own-page"
OWN_TREND_WINDOW: Final = timedelta(days=30)
DAILY_CHECK: Final = "daily_symptoms"
CAT: Final = "cat"
"""The questionnaires' kinds, as stored (questionnaire_responses.kind)."""
_LOOKS_READ: Final = 500
"""Access-log rows read for the looks shown: many rows make one look."""
LOOKS_SHOWN: Final = 30

_EMERGENCY_MARK: Final = "113"
"""The Norwegian medical emergency number: the step of a plan that names it is the one for
sudden, severe worsening."""
_CONTACT: Final = re.compile(
    r"\b(ring|ringe|ringje|call)\b|oppfølgingstjenest|oppfølgingstenest|follow-up service",
    re.IGNORECASE,
)
"""Words of the step that tells the patient to act and whom to contact (nb, nn, en)."""
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class PlanSteps:
    """The care plan's self-management text as numbered steps, one sentence each, and which
    of them the page points to: the product chooses the step, the plan's words are the advice."""

    steps: tuple[str, ...]
    act: int | None
    """1-based: the step that says what to do and whom to call when a value is outside."""
    emergency: int | None
    """1-based: the step for sudden, severe worsening (calling 113)."""


def plan_steps(self_management: str) -> PlanSteps:
    steps = tuple(s.strip() for s in _SENTENCE_END.split(self_management) if s.strip())
    emergency = next(
        (n for n, step in reversed(list(enumerate(steps, start=1))) if _EMERGENCY_MARK in step),
        None,
    )
    act = next(
        (n for n, step in enumerate(steps, start=1) if n != emergency and _CONTACT.search(step)),
        None,
    )
    return PlanSteps(steps=steps, act=act, emergency=emergency)


@dataclass(frozen=True, slots=True)
class WeightChange:
    gain_kg: float
    days: int
    limit_kg: float


@dataclass(frozen=True, slots=True)
class LatestValue:
    """One measurement's newest reading and the zone of the patient's plan it falls in."""

    measurement: catalog.Measurement
    reading: Reading
    limits: PlanLimits | None
    zone: Severity
    direction: str | None
    """"low" or "high" when outside the target; None inside it."""
    weight_change: WeightChange | None = None


@dataclass(frozen=True, slots=True)
class ScheduleItem:
    """One thing the plan asks for: a measurement (its code) or the daily check (code None)."""

    code: str | None
    every_hours: int
    last_at: datetime | None
    done: bool
    """Done today (daily or more often) or within its interval (less often than daily)."""


@dataclass(frozen=True, slots=True)
class Look:
    """One person's look at the patient's data: the access-log rows one viewer left within
    a few minutes of each other (a page, its refreshes, the next page) are one look."""

    at: datetime
    actor_name: str
    role: str
    organisation_name: str | None
    reason_code: str
    emergency_reason: str | None


@dataclass(frozen=True, slots=True)
class OwnView:
    patient: Patient
    plan: CarePlan | None
    steps: PlanSteps
    latest: list[LatestValue]
    readings: list[Reading]
    schedule: list[ScheduleItem]
    looks: list[Look]
    reminders: tuple[str, str] | None
    """The (channel, address) the patient chose for reminders (alerts/reminders.py); None."""
    relative: str | None = None
    """The name of the relative looking for the patient (a proxy); None for the patient."""
    may_answer: bool = True
    """Whether the viewer may fill in the questionnaires (a relative: if the consent allows)."""
    consents: list[ProxyConsent] | None = None
    """The relatives the patient let follow the page, for the patient to see and withdraw;
    None when a relative looks (they manage no consent)."""


def load_own(conn: psycopg.Connection, *, patient_id: UUID, view: View) -> OwnView | None:
    """The own page's data, after the one access check (NotVisibleError for anyone else's
    patient, as for one who does not exist) and with its access-log row."""
    # Drawn only when opened or acted on (the page has no periodic refresh), so every load is
    # a look of its own.
    now = view.now
    do_access_patient(
        conn,
        principal=view.principal,
        permission=Permission.READ_OWN_VIEW,
        patient_id=patient_id,
        resource=OWN_RESOURCE,
        action=Action.READ,
        interface=Interface.DASHBOARD,
        now=now,
    )
    patient = get_patient(conn, patient_id=patient_id, now=now)
    if patient is None:
        return None
    plan = get_care_plan(conn, patient_id=patient_id)
    readings = readings_for_patient(conn, patient_id=patient_id, since=now - OWN_TREND_WINDOW)
    row = conn.execute(
        "SELECT max(answered_at) FROM questionnaire_responses WHERE patient_id = %s AND kind = %s",
        (patient_id, DAILY_CHECK),
    ).fetchone()
    answered_at = None if row is None else row[0]
    entries = access_log(conn, patient_id=patient_id, limit=_LOOKS_READ, offset=0)
    proxy = view.principal.kind == "relative"
    return OwnView(
        relative=view.principal.name if proxy else None,
        consents=None if proxy else consents_of_patient(conn, patient_id=patient_id),
        may_answer=not proxy
        or proxy_allows(
            conn,
            relative_id=view.principal.uuid,
            patient_id=patient_id,
            permission=Permission.SUBMIT_QUESTIONNAIRE,
            now=now,
        ),
        patient=patient,
        plan=plan,
        steps=plan_steps(plan.self_management if plan else ""),
        latest=latest_values(readings, plan),
        readings=readings,
        schedule=schedule(plan, readings, answered_at=answered_at, now=now),
        looks=looks(entries)[:LOOKS_SHOWN],
        # Where the reminders go is the patient's own choice, not shown to a relative.
        reminders=None if proxy else reminder_channel(conn, patient_id=patient_id),
    )


PROXIED_RESOURCE: Final = "proxied-patients"


def load_proxied(conn: psycopg.Connection, *, view: View) -> list[ProxiedPatient]:
    """The patients whose page a relative may see now (filtered in SQL by their consents),
    with one access-log row naming them: their names are a look too."""
    found = proxied_patients(conn, relative_id=view.principal.uuid, now=view.now)
    if found:
        do_log_access(
            conn,
            principal=view.principal,
            patient_ids=[p.id for p in found],
            resource=PROXIED_RESOURCE,
            action=Action.READ,
            interface=Interface.DASHBOARD,
            reason=Reason.PROXY,
            now=view.now,
        )
    return found


def zone_of(value: float, limits: PlanLimits | None) -> tuple[Severity, str | None]:
    """The plan's zone of a value and on which side it lies; a value on a limit is inside."""
    if limits is None:
        return Severity.GREEN, None
    for severity, low, high in reversed(limits.bands()):
        if low is not None and value < low:
            return severity, "low"
        if high is not None and value > high:
            return severity, "high"
    return Severity.GREEN, None


def latest_values(readings: list[Reading], plan: CarePlan | None) -> list[LatestValue]:
    """The newest reading of each measurement, in the catalog's order."""
    newest: dict[str, Reading] = {}
    for reading in readings:  # oldest first: the last one wins
        newest[reading.code] = reading
    limits = {limit.code: limit for limit in plan.thresholds} if plan else {}
    found = []
    for measurement in catalog.MEASUREMENTS:
        if measurement.code not in newest:
            continue
        reading = newest[measurement.code]
        zone, direction = zone_of(reading.value, limits.get(measurement.code))
        value = LatestValue(
            measurement=measurement,
            reading=reading,
            limits=limits.get(measurement.code),
            zone=zone,
            direction=direction,
        )
        if measurement.code == WEIGHT:
            value = _with_weight_change(value, readings, plan)
        found.append(value)
    return found


def _with_weight_change(
    value: LatestValue, readings: list[Reading], plan: CarePlan | None
) -> LatestValue:
    """The gain over the plan's weight window, as the weight-gain rule measures it: the newest
    weight against the lowest one about `window_days` before it. Gaining the plan's kilograms
    or more is the plan's yellow zone."""
    days = int(_parameter(plan, "weight_gain.window_days"))
    limit = _parameter(plan, "weight_gain.kg_in_window")
    newest = value.reading.measured_at
    window = timedelta(days=days)
    earlier = [
        r.value
        for r in readings
        if r.code == WEIGHT
        and newest - window - WINDOW_SLACK <= r.measured_at <= newest - window + WINDOW_SLACK
    ]
    if not earlier:
        return value
    gain = round(value.reading.value - min(earlier), 1)
    change = WeightChange(gain_kg=gain, days=days, limit_kg=limit)
    if gain >= limit and value.zone is Severity.GREEN:
        return replace(value, zone=Severity.YELLOW, direction="high", weight_change=change)
    return replace(value, weight_change=change)


def _parameter(plan: CarePlan | None, name: str) -> float:
    """A rule parameter as the plan tunes it, or its default."""
    value = ((plan.rule_parameters or {}) if plan else {}).get(name, TUNABLES[name].default)
    assert value is not None, f"{name} has a default"
    return float(value)


def schedule(
    plan: CarePlan | None,
    readings: list[Reading],
    *,
    answered_at: datetime | None,
    now: datetime,
) -> list[ScheduleItem]:
    """What the plan asks for and whether it is done: anything asked daily or more often is
    done when it was done today (Oslo time); anything rarer when done within its interval.
    The daily check is asked every day of every plan."""
    if plan is None:
        return []
    today = datetime.combine(now.astimezone(DISPLAY_TIMEZONE).date(), time(), DISPLAY_TIMEZONE)
    last: dict[str, datetime] = {}
    for reading in readings:
        last[reading.code] = reading.measured_at

    def item(code: str | None, every_hours: int, last_at: datetime | None) -> ScheduleItem:
        since = today if every_hours <= 24 else now - timedelta(hours=every_hours)
        done = last_at is not None and last_at >= since
        return ScheduleItem(code=code, every_hours=every_hours, last_at=last_at, done=done)

    order = {m.code: n for n, m in enumerate(catalog.MEASUREMENTS)}
    items = [
        item(m.code, m.every_hours, last.get(m.code))
        for m in sorted(plan.measurements, key=lambda m: order.get(m.code, len(order)))
    ]
    return [*items, item(None, 24, answered_at)]


def looks(entries: list[AccessLogEntry]) -> list[Look]:
    """One row per look, newest first, from the access log (newest first). The patient's own
    reads are left out: the list answers who *else* has seen the data; a log-in that found
    the patient's record by their national identity number stays, as the patient should
    know their number led there. Rows of one viewer
    less than `LOG_COVERS` apart are one look, shown at the time it began."""
    found: list[Look] = []
    open_look: dict[tuple[str, str, str | None, str, str | None], int] = {}
    for entry in entries:
        if entry.actor_kind == "patient" and entry.reason_code != Reason.IDENTIFIED:
            continue
        key = (
            entry.actor_name,
            entry.role,
            entry.organisation_name,
            entry.reason_code,
            entry.emergency_reason,
        )
        index = open_look.get(key)
        if index is not None and found[index].at - entry.at <= LOG_COVERS:
            found[index] = replace(found[index], at=entry.at)
            continue
        open_look[key] = len(found)
        found.append(
            Look(
                at=entry.at,
                actor_name=entry.actor_name,
                role=entry.role,
                organisation_name=entry.organisation_name,
                reason_code=entry.reason_code,
                emergency_reason=entry.emergency_reason,
            )
        )
    return found
