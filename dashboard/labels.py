"""The words the pages put on stored codes (severities, conditions, roles, reasons, device
kinds, directions), each through the translation catalogs (core/locale, nb, nn and en).

A code the catalogs do not know is shown as it is stored, so a new value in the database
reads as itself rather than as nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from care.access import Reason
from care.models import Condition
from core.auth import StaffRole
from core.i18n import Translator
from core.limits import Severity
from dashboard.formatting import NO_VALUE


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
    reasons: dict[str, str] = {
        Reason.CARE_TEAM: t("Member of your care team"),
        Reason.OWN_DATA: t("You"),
        Reason.HANDOVER: t("Receiving unit for a hand-over"),
        Reason.ADMINISTRATION: t("Administration"),
        Reason.EMERGENCY: t("Emergency access"),
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
