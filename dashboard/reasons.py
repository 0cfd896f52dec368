"""Why an alert was raised, in words: the rule's title from the catalogue (alerts/library/) and
the values behind it, so a nurse reads "NEWS2 (partial): score 5 from oxygen saturation 91 %
(2), ..." and never a rule's id or a statistic she has to work out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from alerts.library.catalogue import RULES_BY_ID
from alerts.queries import Alert
from core import catalog
from core.i18n import Translator
from dashboard.formatting import NO_VALUE, format_number, format_relative, format_value


def rule_title(rule_id: str, t: Translator) -> str:
    """The rule's title in the reader's language; a rule the catalogue no longer holds is
    named as such rather than by its id."""
    rule = RULES_BY_ID.get(rule_id)
    if rule is None:
        return t("Other alert")
    return rule.title.get(t.language) or rule.title["en"]


def measurement_name(code: str | None, t: Translator) -> str:
    """A measurement (or NEWS2's consciousness, which no device measures) in words."""
    if code == "consciousness":
        return t("consciousness")
    measurement = catalog.lookup(code) if code else None
    return NO_VALUE if measurement is None else measurement.name(t.language)


def value_text(code: str | None, value: float | None, t: Translator) -> str:
    measurement = catalog.lookup(code) if code else None
    if value is None:
        return NO_VALUE
    if measurement is None:
        return format_number(value, 1, t)
    return format_value(measurement, value, t)


def reason(alert: Alert, *, now: datetime, t: Translator) -> str:
    """ "<rule title>: <what it found>", e.g. "Outside the limits: Oxygen saturation 86 %,
    limit 90 %"."""
    found = findings(alert, now=now, t=t)
    title = rule_title(alert.rule_id, t)
    return f"{title}: {found}" if found else title


def findings(alert: Alert, *, now: datetime, t: Translator) -> str:
    """What the rule found, from the values it stored with the alert; "" when nothing more
    than the title can be said."""
    details = alert.details
    text = _by_rule(alert, details, now=now, t=t)
    if details.get("gated_by_symptoms"):
        text = t("{found}; red because of symptoms").format(found=text)
    return text


def _by_rule(alert: Alert, details: dict[str, Any], *, now: datetime, t: Translator) -> str:
    found = _FINDINGS.get(alert.rule_id)
    return "" if found is None else found(alert, details, now, t)


def _threshold(alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    side = "red_" if alert.severity == "red" else ""
    limit = details.get(f"{side}{alert.direction}")
    return t("{measurement} {value}, limit {limit}").format(
        measurement=measurement_name(alert.code, t),
        value=value_text(alert.code, alert.last_value, t),
        limit=value_text(alert.code, limit, t),
    )


def _news2(_alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    used = details.get("used", {})
    scored = ", ".join(
        f"{measurement_name(code, t)} {value_text(code, float(part['value']), t)} ({part['score']})"
        for code, part in used.items()
    )
    missing = ", ".join(measurement_name(c, t) for c in details.get("missing", []))
    return t("partial score {total} from {used}; not measured: {missing}").format(
        total=details.get("total", NO_VALUE), used=scored or NO_VALUE, missing=missing or NO_VALUE
    )


def _spo2_drop(alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    return t("{drop} points below the median of {days} days ({median})").format(
        drop=format_number(float(details.get("drop", 0)), 0, t),
        days=details.get("baseline_days", NO_VALUE),
        median=value_text(alert.code, details.get("baseline_median"), t),
    )


def _peak_flow_drop(alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    return t("{measurement} {value}, below the patient's usual range ({limit})").format(
        measurement=measurement_name(alert.code, t),
        value=value_text(alert.code, alert.last_value, t),
        limit=value_text(alert.code, details.get("limit"), t),
    )


def _daily_symptoms(_alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    questions = {
        "more_breathless": t("more breathless"),
        "more_swelling": t("more swelling"),
        "more_cough": t("more cough"),
    }
    answered = ", ".join(questions.get(q, q) for q in details.get("yes", []))
    return t("answered yes: {answers}").format(answers=answered or NO_VALUE)


def _cat_score(_alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    rise = details.get("rise")
    if rise is None:
        return t("total {total}").format(total=details.get("total", NO_VALUE))
    return t("total {total}, up {rise}").format(total=details.get("total"), rise=rise)


def _missing(alert: Alert, details: dict[str, Any], now: datetime, t: Translator) -> str:
    """The last reading, and whether the patient was reminded first (alerts/reminders.py): a
    nurse who calls knows the reminder did not help."""
    last = details.get("last_reading_at")
    if not last:
        reason = t("{measurement}: no reading yet").format(
            measurement=measurement_name(alert.code, t)
        )
    else:
        reason = t("{measurement}: last reading {when}").format(
            measurement=measurement_name(alert.code, t),
            when=format_relative(datetime.fromisoformat(str(last)), now, t),
        )
    if details.get("reminded"):
        reason += "; " + t("the patient was reminded")
    return reason


def _device_silent(_alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    return t("device {device}, limit {hours} h").format(
        device=details.get("device_id", NO_VALUE),
        hours=format_number(float(details.get("limit_hours", 0)), 0, t),
    )


def _battery_low(_alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    return t("device {device}, battery {percent} %").format(
        device=details.get("device_id", NO_VALUE),
        percent=format_number(float(details.get("battery_pct", 0)), 0, t),
    )


def _backlog(_alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    return t("device {device}, {count} readings waiting").format(
        device=details.get("device_id", NO_VALUE), count=details.get("backlog", NO_VALUE)
    )


def _weight_gain(alert: Alert, details: dict[str, Any], _now: datetime, t: Translator) -> str:
    """The gain that breached its limit the most (a day's, or the window's)."""
    gains = [
        (int(label.split("_")[0]), float(part["gain_kg"]), float(part["limit_kg"]))
        for label, part in details.items()
        if isinstance(part, dict) and "gain_kg" in part
    ]
    if not gains:
        return value_text(alert.code, alert.last_value, t)
    days, gain, limit = max(gains, key=lambda g: g[1] / g[2] if g[2] else g[1])
    text = t.ngettext(
        "+{gain} kg in {days} day (limit {limit} kg)",
        "+{gain} kg in {days} days (limit {limit} kg)",
        days,
    )
    return text.format(gain=format_number(gain, 1, t), days=days, limit=format_number(limit, 1, t))


_FINDINGS: Final[dict[str, Callable[[Alert, dict[str, Any], datetime, Translator], str]]] = {
    "threshold": _threshold,
    "news2_partial": _news2,
    "weight_gain": _weight_gain,
    "spo2_drop": _spo2_drop,
    "peak_flow_drop": _peak_flow_drop,
    "daily_symptoms": _daily_symptoms,
    "cat_score": _cat_score,
    "missing_measurement": _missing,
    "device_silent": _device_silent,
    "battery_low": _battery_low,
    "gateway_backlog": _backlog,
}
"""What each rule found, by the rule's id (alerts/library/catalogue.py)."""
