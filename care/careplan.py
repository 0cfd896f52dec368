"""A patient's care plan: started from a condition template, changed by clinicians with a
reason, every version kept (who, when, why, the plan before and after).

Changes are optimistic: the caller names the version it read, and a change against any other
version is refused (`StaleVersionError`), so two nurses never silently overwrite each other.
The plan row is locked (FOR UPDATE) before the version is compared, so of two concurrent
changes against the same version exactly one wins; each change is one transaction.

The plan is the only source of a patient's limits: its rows in `care_plan_limits` (which the
rule engine and the dashboard read) are `core.limits.Limits` with a reason; `reason` NULL is
the template's default, anything else a clinician's override and why.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from care.templates import TEMPLATES, CarePlanTemplate, ScheduledMeasurement
from core import catalog
from core.limits import Limits
from core.rule_parameters import InvalidParameterError, check_windows, checked_parameters


class StaleVersionError(Exception):
    """The plan changed since the caller read it."""


class ReasonRequiredError(ValueError):
    """Every change to a care plan says why."""


class CarePlanExistsError(Exception):
    """The patient has a care plan already; change it instead."""


class UnknownTemplateError(ValueError):
    """No care-plan template by that key."""


class InvalidChangeError(ValueError):
    """A change the plan cannot take: an unknown measurement, limits in the wrong order, a
    schedule out of range, a text too long."""


class UnknownPatientError(LookupError):
    """No patient by that id."""


# The column limits of core/migrations/0009_shared_care.sql, checked before the database does.
MAX_REASON = 2000
MAX_SELF_MANAGEMENT = 8000
MAX_EVERY_HOURS = 24 * 31
HYPERCAPNIC_TARGET = (88, 92)
"""A prescribed SpO2 target of 88-92 % is what NEWS2 scale 2 is for (clinical reference §2.1
[R2][R4]): a plan with it scores SpO2 on scale 2 unless the clinician chose the scale."""


@dataclass(frozen=True, slots=True)
class PlanLimits(Limits):
    """One measurement's limits in a care plan, and why they are what they are."""

    reason: str | None = None
    """Why a clinician overrode the template's default; None: the default."""


@dataclass(frozen=True, slots=True)
class CarePlan:
    patient_id: UUID
    template: str
    version: int
    spo2_scale: int
    self_management: str
    measurements: tuple[ScheduledMeasurement, ...]
    thresholds: tuple[PlanLimits, ...]
    updated_at: datetime
    updated_by: UUID | None
    spo2_target: tuple[int, int] | None = None
    """The prescribed SpO2 target range (low, high) in %, when the plan sets one."""
    rule_parameters: dict[str, float] | None = None
    """The rule parameters tuned for this patient (core/rule_parameters.py); the rest have
    their defaults."""


@dataclass(frozen=True, slots=True)
class CarePlanVersion:
    version: int
    changed_at: datetime
    changed_by: UUID | None
    reason: str
    old: dict[str, Any] | None
    new: dict[str, Any]


def care_plan_as_json(plan: CarePlan) -> dict[str, Any]:
    """The whole plan in JSON types only: what the API returns and each version stores."""
    return {
        "patient_id": str(plan.patient_id),
        "template": plan.template,
        "version": plan.version,
        "spo2_scale": plan.spo2_scale,
        "self_management": plan.self_management,
        "measurements": [asdict(m) for m in plan.measurements],
        "thresholds": [asdict(t) for t in plan.thresholds],
        "spo2_target": None if plan.spo2_target is None else list(plan.spo2_target),
        "rule_parameters": dict(plan.rule_parameters or {}),
        "updated_at": plan.updated_at.isoformat(),
        "updated_by": None if plan.updated_by is None else str(plan.updated_by),
    }


def template_as_json(template: CarePlanTemplate) -> dict[str, Any]:
    return {
        "key": template.key,
        "conditions": list(template.conditions),
        "spo2_scale": template.spo2_scale,
        "measurements": [asdict(m) for m in template.measurements],
        "thresholds": [{**asdict(t), "reason": None} for t in template.thresholds],
    }


def do_create_care_plan(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    template: str,
    author: UUID | None,
    now: datetime,
    limits: Sequence[Limits] | None = None,
    measurements: Sequence[ScheduledMeasurement] | None = None,
    spo2_scale: int | None = None,
    spo2_target: tuple[int, int] | None = None,
    rule_parameters: dict[str, float | None] | None = None,
) -> CarePlan:
    """Version 1 of a patient's plan, from a template, in the patient's language.

    `limits` or `measurements`, when given, replace the template's (a plan individual from
    the start, such as one carried over from another service); the version says so, and the
    given limits carry that as their reason. The clinician chooses the SpO2 scale when the
    plan is made (`spo2_scale`), or it follows the prescribed target (`spo2_target`: 88-92 %
    is scale 2), or the template's; `rule_parameters` tunes rules from the start."""
    chosen = TEMPLATES.get(template)
    if chosen is None:
        raise UnknownTemplateError(f"no care-plan template {template!r}")
    reason = f"created from template {chosen.key}"
    if limits is not None or measurements is not None:
        reason += " with individual limits or schedule"
    if rule_parameters:
        reason += " (rule parameters tuned)"
    target = _checked_target(spo2_target)
    scale = _scale(spo2_scale, target=target, otherwise=chosen.spo2_scale)
    parameters = {
        name: value
        for name, value in _checked_parameters(rule_parameters or {}).items()
        if value is not None
    }
    _check_windows(parameters)
    own_limits = None if limits is None else _unique([_checked(change) for change in limits])
    schedule = (
        chosen.measurements
        if measurements is None
        else _unique([_checked_schedule(m) for m in measurements])
    )
    with conn.transaction():
        row = conn.execute(
            "SELECT preferred_language FROM patients WHERE id = %s FOR UPDATE", (patient_id,)
        ).fetchone()
        if row is None:
            raise UnknownPatientError("no such patient")
        if get_care_plan(conn, patient_id=patient_id) is not None:
            raise CarePlanExistsError("the patient has a care plan already")
        conn.execute(
            """
            INSERT INTO care_plans (patient_id, template, version, spo2_scale, self_management,
                                    updated_at, updated_by, spo2_target_low, spo2_target_high,
                                    rule_parameters)
            VALUES (%s, %s, 1, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                patient_id,
                chosen.key,
                scale,
                chosen.self_management.get(row[0], chosen.self_management["nb"]),
                now,
                author,
                None if target is None else target[0],
                None if target is None else target[1],
                Jsonb(parameters),
            ),
        )
        _write_measurements(conn, patient_id=patient_id, measurements=schedule)
        for given in chosen.thresholds if own_limits is None else own_limits:
            _write_threshold(
                conn,
                patient_id=patient_id,
                limits=given,
                reason=None if own_limits is None else reason,
                now=now,
            )
        plan = get_care_plan(conn, patient_id=patient_id)
        assert plan is not None
        _record_version(conn, plan=plan, old=None, author=author, now=now, reason=reason)
    return plan


def get_care_plan(conn: psycopg.Connection, *, patient_id: UUID) -> CarePlan | None:
    row = conn.execute(
        "SELECT template, version, spo2_scale, self_management, updated_at, updated_by,"
        " spo2_target_low, spo2_target_high, rule_parameters"
        " FROM care_plans WHERE patient_id = %s",
        (patient_id,),
    ).fetchone()
    if row is None:
        return None
    template, version, spo2_scale, self_management, updated_at, updated_by = row[:6]
    target_low, target_high, parameters = row[6:]
    with conn.cursor(row_factory=class_row(ScheduledMeasurement)) as cur:
        measurements = cur.execute(
            "SELECT code, every_hours, grace_hours FROM care_plan_measurements"
            " WHERE patient_id = %s ORDER BY code",
            (patient_id,),
        ).fetchall()
    return CarePlan(
        patient_id=patient_id,
        template=template,
        version=version,
        spo2_scale=spo2_scale,
        self_management=self_management,
        measurements=tuple(measurements),
        thresholds=plan_limits(conn, patient_id=patient_id),
        updated_at=updated_at,
        updated_by=updated_by,
        spo2_target=None if target_low is None else (target_low, target_high),
        rule_parameters=parameters,
    )


def plan_limits(conn: psycopg.Connection, *, patient_id: UUID) -> tuple[PlanLimits, ...]:
    """The patient's limits, by code; none without a care plan."""
    with conn.cursor(row_factory=class_row(PlanLimits)) as cur:
        return tuple(
            cur.execute(
                "SELECT code, low, high, red_low, red_high, reason FROM care_plan_limits"
                " WHERE patient_id = %s ORDER BY code",
                (patient_id,),
            )
        )


def do_update_care_plan(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    expected_version: int,
    author: UUID,
    now: datetime,
    reason: str,
    thresholds: Sequence[Limits] | None = None,
    measurements: Sequence[ScheduledMeasurement] | None = None,
    self_management: str | None = None,
    spo2_scale: int | None = None,
    spo2_target: tuple[int, int] | None = None,
    rule_parameters: dict[str, float | None] | None = None,
) -> CarePlan:
    """Change what is given (None: unchanged), in one new version; refused without a reason
    or against a version other than the current one.

    A threshold change replaces all four limits of that measurement and records `reason` as
    the override's reason; `measurements` replaces the whole schedule. A new `spo2_target`
    sets the scale it implies (88-92 %: 2, else 1) unless `spo2_scale` is given too.
    `rule_parameters` sets the named parameters (a None value: back to the default) and
    keeps the others."""
    _check_reason(reason)
    if spo2_scale not in (None, 1, 2):
        raise InvalidChangeError("the SpO2 scale is 1 or 2")
    target = _checked_target(spo2_target)
    if target is not None:
        spo2_scale = _scale(spo2_scale, target=target, otherwise=1)
    tuned = None if rule_parameters is None else _checked_parameters(rule_parameters)
    if self_management is not None and len(self_management) > MAX_SELF_MANAGEMENT:
        raise InvalidChangeError(f"self-management text over {MAX_SELF_MANAGEMENT} characters")
    changes = _unique([_checked(change) for change in thresholds or ()])
    schedule = (
        _unique([_checked_schedule(m) for m in measurements]) if measurements is not None else None
    )
    with conn.transaction():
        old = _locked_plan(conn, patient_id=patient_id, expected_version=expected_version)
        for change in changes:
            _write_threshold(conn, patient_id=patient_id, limits=change, reason=reason, now=now)
        if schedule is not None:
            _write_measurements(conn, patient_id=patient_id, measurements=schedule)
        parameters = None
        if tuned is not None:
            merged = {**old["rule_parameters"], **tuned}
            parameters = {name: value for name, value in merged.items() if value is not None}
            _check_windows(parameters)
        updated = conn.execute(
            """
            UPDATE care_plans
               SET version = version + 1, updated_at = %(now)s, updated_by = %(author)s,
                   self_management = coalesce(%(text)s, self_management),
                   spo2_scale = coalesce(%(scale)s, spo2_scale),
                   spo2_target_low = coalesce(%(target_low)s, spo2_target_low),
                   spo2_target_high = coalesce(%(target_high)s, spo2_target_high),
                   rule_parameters = coalesce(%(parameters)s, rule_parameters)
             WHERE patient_id = %(patient)s AND version = %(expected)s
            """,
            {
                "now": now,
                "author": author,
                "text": self_management,
                "scale": spo2_scale,
                "target_low": None if target is None else target[0],
                "target_high": None if target is None else target[1],
                "parameters": None if parameters is None else Jsonb(parameters),
                "patient": patient_id,
                "expected": expected_version,
            },
        )
        if updated.rowcount != 1:
            raise StaleVersionError
        plan = get_care_plan(conn, patient_id=patient_id)
        assert plan is not None
        _record_version(conn, plan=plan, old=old, author=author, now=now, reason=reason)
    return plan


def do_reset_threshold(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    code: str,
    expected_version: int,
    author: UUID,
    now: datetime,
    reason: str,
) -> CarePlan:
    """Back to the template's default for one measurement (given by code or alias), in one new
    version; without a default in the template, the measurement has no limits afterwards."""
    _check_reason(reason)
    measurement = _measurement(code)
    with conn.transaction():
        old = _locked_plan(conn, patient_id=patient_id, expected_version=expected_version)
        template = TEMPLATES[old["template"]]
        default = next((t for t in template.thresholds if t.code == measurement), None)
        conn.execute(
            "DELETE FROM care_plan_limits WHERE patient_id = %s AND code = %s",
            (patient_id, measurement),
        )
        if default is not None:
            _write_threshold(conn, patient_id=patient_id, limits=default, reason=None, now=now)
        conn.execute(
            "UPDATE care_plans SET version = version + 1, updated_at = %s, updated_by = %s"
            " WHERE patient_id = %s AND version = %s",
            (now, author, patient_id, expected_version),
        )
        updated = get_care_plan(conn, patient_id=patient_id)
        assert updated is not None
        _record_version(conn, plan=updated, old=old, author=author, now=now, reason=reason)
    return updated


def care_plan_history(conn: psycopg.Connection, *, patient_id: UUID) -> list[CarePlanVersion]:
    """Every version, newest first."""
    with conn.cursor(row_factory=class_row(CarePlanVersion)) as cur:
        return cur.execute(
            "SELECT version, changed_at, changed_by, reason, old, new FROM care_plan_versions"
            " WHERE patient_id = %s ORDER BY version DESC",
            (patient_id,),
        ).fetchall()


def _locked_plan(
    conn: psycopg.Connection, *, patient_id: UUID, expected_version: int
) -> dict[str, Any]:
    row = conn.execute(
        "SELECT version FROM care_plans WHERE patient_id = %s FOR UPDATE", (patient_id,)
    ).fetchone()
    if row is None or row[0] != expected_version:
        raise StaleVersionError
    plan = get_care_plan(conn, patient_id=patient_id)
    assert plan is not None
    return care_plan_as_json(plan)


def _checked_target(target: tuple[int, int] | None) -> tuple[int, int] | None:
    if target is None:
        return None
    low, high = target
    if not 50 <= low < high <= 100:
        raise InvalidChangeError("an SpO2 target is a range low < high within 50-100 %")
    return (int(low), int(high))


def _scale(chosen: int | None, *, target: tuple[int, int] | None, otherwise: int) -> int:
    """The clinician's choice; else what the target implies; else `otherwise`."""
    if chosen is not None:
        if chosen not in (1, 2):
            raise InvalidChangeError("the SpO2 scale is 1 or 2")
        return chosen
    if target is not None:
        return 2 if target == HYPERCAPNIC_TARGET else 1
    return otherwise


def _checked_parameters(given: dict[str, float | None]) -> dict[str, float | None]:
    """The values as the plan stores them; None (back to the default) kept to drop the name."""
    try:
        checked: dict[str, float | None] = dict(checked_parameters(given))
    except InvalidParameterError as error:
        raise InvalidChangeError(str(error)) from error
    checked.update({name: None for name, value in given.items() if value is None})
    return checked


def _check_windows(parameters: dict[str, float]) -> None:
    """The plan's windows of the day, as they will be stored, stay open (start before end)."""
    try:
        check_windows(parameters)
    except InvalidParameterError as error:
        raise InvalidChangeError(str(error)) from error


def _check_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise ReasonRequiredError("a change to a care plan needs a reason")
    if len(reason) > MAX_REASON:
        raise InvalidChangeError(f"the reason is over {MAX_REASON} characters long")


def _measurement(code: str) -> str:
    measurement = catalog.lookup(code)
    if measurement is None:
        raise InvalidChangeError(f"unknown measurement {code!r}")
    return measurement.code


def _checked(change: Limits) -> Limits:
    """The change under its LOINC code, if its limits are consistent: a yellow one (low or
    high; the table needs one), all finite, and red_low <= low < high <= red_high (a red limit
    may equal its yellow one: no yellow band on that side); red limits on opposite sides must
    leave room between them."""
    code = _measurement(change.code)
    order = [("red_low", change.red_low), ("low", change.low)]
    order += [("high", change.high), ("red_high", change.red_high)]
    given = [(name, value) for name, value in order if value is not None]
    if change.low is None and change.high is None:
        raise InvalidChangeError(f"{change.code}: a threshold needs a low or a high limit")
    if not all(math.isfinite(value) for _, value in given):
        raise InvalidChangeError(f"{change.code}: limits must be finite numbers")
    for (lower, below), (upper, above) in itertools.pairwise(given):
        same_side = {lower, upper} in ({"red_low", "low"}, {"high", "red_high"})
        if below > above or (below == above and not same_side):
            raise InvalidChangeError(
                f"{change.code}: limits must rise: red_low <= low < high <= red_high"
                f" ({lower} {below} is not below {upper} {above})"
            )
    return replace(change, code=code)


def _checked_schedule(measurement: ScheduledMeasurement) -> ScheduledMeasurement:
    if not 1 <= measurement.every_hours <= MAX_EVERY_HOURS or measurement.grace_hours < 0:
        raise InvalidChangeError(
            f"{measurement.code}: a schedule needs 1 <= every_hours <= {MAX_EVERY_HOURS}"
            " and grace_hours >= 0"
        )
    return replace(measurement, code=_measurement(measurement.code))


_Entry = TypeVar("_Entry", Limits, ScheduledMeasurement)


def _unique(items: list[_Entry]) -> list[_Entry]:
    """Refuses two entries for one measurement (say "spo2" and "59408-5")."""
    codes = [item.code for item in items]
    twice = sorted({code for code in codes if codes.count(code) > 1})
    if twice:
        raise InvalidChangeError(f"more than one entry for {', '.join(twice)}")
    return items


def _write_threshold(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    limits: Limits,
    reason: str | None,
    now: datetime,
) -> None:
    conn.execute(
        """
        INSERT INTO care_plan_limits
            (patient_id, code, low, high, red_low, red_high, reason, updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (patient_id, code) DO UPDATE
           SET low = EXCLUDED.low, high = EXCLUDED.high, red_low = EXCLUDED.red_low,
               red_high = EXCLUDED.red_high, reason = EXCLUDED.reason,
               updated_at = EXCLUDED.updated_at
        """,
        (
            patient_id,
            limits.code,
            limits.low,
            limits.high,
            limits.red_low,
            limits.red_high,
            reason,
            now,
        ),
    )


def _write_measurements(
    conn: psycopg.Connection,
    *,
    patient_id: UUID,
    measurements: Sequence[ScheduledMeasurement],
) -> None:
    conn.execute("DELETE FROM care_plan_measurements WHERE patient_id = %s", (patient_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO care_plan_measurements (patient_id, code, every_hours, grace_hours)"
            " VALUES (%s, %s, %s, %s)",
            [(patient_id, m.code, m.every_hours, m.grace_hours) for m in measurements],
        )


def _record_version(
    conn: psycopg.Connection,
    *,
    plan: CarePlan,
    old: dict[str, Any] | None,
    author: UUID | None,
    now: datetime,
    reason: str,
) -> None:
    conn.execute(
        "INSERT INTO care_plan_versions (patient_id, version, changed_at, changed_by, reason,"
        " old, new) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            plan.patient_id,
            plan.version,
            now,
            author,
            reason,
            None if old is None else Jsonb(old),
            Jsonb(care_plan_as_json(plan)),
        ),
    )
