"""The words the pages put on stored codes (severities, conditions, roles, reasons, device
kinds, directions), each through the translation catalogs (core/locale, nb, nn and en).

A code the catalogs do not know is shown as it is stored, so a new value in the database
reads as itself rather than as nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from care.access import Reason
from care.models import Condition
from core import catalog
from core.auth import StaffRole
from core.i18n import Translator
from core.limits import Severity
from dashboard.formatting import NO_VALUE


def measurement_name(code: str, t: Translator) -> str:
    """The catalog's name for a LOINC code in the reader's language (NEWS2's consciousness,
    which no device measures, from the translation catalogs)."""
    if code == "consciousness":
        return t("consciousness")
    measurement = catalog.lookup(code)
    return code if measurement is None else measurement.name(t.language)


def severity_name(severity: Severity, t: Translator) -> str:
    names = {Severity.RED: t("Red"), Severity.YELLOW: t("Yellow"), Severity.GREEN: t("Green")}
    return names[severity]


def condition_names(conditions: Sequence[str], t: Translator) -> str:
    # Keyed by str: the conditions come from the database as text, and a StrEnum member is one.
    names: dict[str, str] = {
        Condition.COPD: t("COPD"),
        Condition.HEART_FAILURE: t("heart failure"),
    }
    return ", ".join(names.get(c, c) for c in conditions) or NO_VALUE


def direction_text(direction: str | None, t: Translator) -> str:
    texts = {"low": t("below the lower limit"), "high": t("above the upper limit")}
    return texts.get(direction or "", "")


def direction_arrow(direction: str | None) -> str:
    return {"low": "↓", "high": "↑"}.get(direction or "", "")


def role_name(role: str, t: Translator) -> str:
    """A staff role, "patient" or "relative", in words; an unknown role as it is stored."""
    names = {
        StaffRole.NURSE: t("Nurse"),
        StaffRole.PHYSICIAN: t("Physician"),
        StaffRole.COORDINATOR: t("Coordinator"),
        StaffRole.ADMINISTRATOR: t("Administrator"),
        "patient": t("Patient"),
        "relative": t("Relative"),
    }
    return names.get(role, role)


def reason_text(reason_code: str, t: Translator) -> str:
    """Why someone could look, as the patient reads it."""
    reasons: dict[str, str] = {
        Reason.CARE_TEAM: t("Member of your care team"),
        Reason.OWN_DATA: t("You"),
        Reason.HANDOVER: t("Receiving unit for a hand-over"),
        Reason.ADMINISTRATION: t("Administration"),
        Reason.EMERGENCY: t("Emergency access"),
        Reason.PROXY: t("Your relative, with your consent"),
        Reason.LOG_IN: t("You logged in"),
        Reason.IDENTIFIED: t("You logged in and were recognised by your national identity number"),
    }
    return reasons.get(reason_code, reason_code)


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


def connection_text(online: bool | None, t: Translator) -> str:
    if online is None:
        return NO_VALUE
    return t("Online") if online else t("Offline")


def notification_channel_name(channel: str, t: Translator) -> str:
    names = {"email": t("E-mail"), "webhook": t("Webhook"), "apprise": t("SMS or chat")}
    return names.get(channel, channel)


def notification_state_name(state: str, t: Translator) -> str:
    names = {"pending": t("waiting"), "delivered": t("delivered"), "dead": t("failed")}
    return names.get(state, state)


def alert_state_name(state: str, t: Translator) -> str:
    names = {"open": t("Not acknowledged"), "acknowledged": t("Acknowledged")}
    return names.get(state, state)


def figure_name(key: str, t: Translator) -> str:
    """The name of a figure (quality.figures.FIGURES), with its unit of measure."""
    names = {
        "patients_followed": t("Patients followed"),
        "patients_new": t("New patients"),
        "patients_ended": t("Follow-ups ended"),
        "patient_days": t("Patient-days"),
        "adherence": t("Adherence (%)"),
        "questionnaire_completion": t("Daily check answered (%)"),
        "alerts": t("Alerts per 100 patient-days"),
        "alerts_red": t("Red alerts per 100 patient-days"),
        "alerts_yellow": t("Yellow alerts per 100 patient-days"),
        "alerts_clinical": t("Clinical alerts per 100 patient-days"),
        "alerts_adherence": t("Adherence alerts per 100 patient-days"),
        "alerts_technical": t("Technical alerts per 100 patient-days"),
        "acknowledge_minutes_median": t("Time to acknowledge, median (min)"),
        "acknowledge_minutes_p90": t("Time to acknowledge, 90th percentile (min)"),
        "resolve_minutes_median": t("Time to resolve, median (min)"),
        "resolve_minutes_p90": t("Time to resolve, 90th percentile (min)"),
        "alerts_outside_opening_hours": t("Alerts outside opening hours (%)"),
        "escalations_to_backup": t("Escalations to the back-up unit"),
        "escalations_to_on_call": t("Escalations to on-call"),
        "notifications_delivered": t("Notifications delivered"),
        "notifications_retried": t("Notifications retried"),
        "notifications_dead": t("Notifications failed"),
        "reminders_sent": t("Reminders sent to patients"),
        "reminders_followed": t("Reminders followed by a measurement"),
        "handovers_proposed": t("Hand-overs proposed"),
        "handovers_accepted": t("Hand-overs accepted"),
        "handovers_declined": t("Hand-overs declined"),
        "handover_accept_hours_median": t("Time to accept a hand-over, median (h)"),
        "patients_per_nurse": t("Patients per nurse"),
    }
    return names.get(key, key)


def deviation_name(kind: str, t: Translator) -> str:
    """The name of a kind of deviation (quality.deviations.KINDS)."""
    names = {
        "acknowledgement_deadline_breached": t("Not acknowledged in time"),
        "escalated_to_on_call": t("Escalated to on-call"),
        "notification_dead": t("Notification failed"),
        "reminder_dead": t("Reminder to a patient failed"),
        "device_silent": t("Device silent beyond its schedule"),
        "no_care_plan": t("No care plan"),
        "no_responsible_unit": t("No responsible unit"),
        "handover_unanswered": t("Hand-over not answered"),
    }
    return names.get(kind, kind)
