"""Small pieces more than one page shows."""

from __future__ import annotations

from dash import html
from dash.development.base_component import Component

from core.i18n import Translator
from core.limits import Severity
from dashboard.labels import severity_name


def severity_badge(severity: Severity, t: Translator) -> Component:
    """A coloured badge that says its colour too: colour is never the only signal."""
    return html.Span(severity_name(severity, t), className=f"badge badge-{severity}")
