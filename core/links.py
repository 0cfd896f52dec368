"""Where the dashboard's pages are, for everyone who points a person at one: the dashboard's
own navigation (dashboard/links.py), the composition root that mounts it, and the links in
notifications that leave the platform (the dispatcher, alerts/dispatch.py).

The paths are constants of the product, not of a running web app, so they live in the
kernel: the dispatcher and the ingest worker run without the web stack and cannot ask the
dashboard, and alerts may not import it (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit
from uuid import UUID

DASHBOARD_PATH: Final = "/app/"
"""Where the dashboard is mounted on the one app."""
PATIENTS_SEGMENT: Final = "patients/"
LOGIN_SEGMENT: Final = "login"
FIGURES_SEGMENT: Final = "figures"
DEVICES_SEGMENT: Final = "devices"
"""The health community's figures and deviations (quality/)."""


def patient_path(patient_id: UUID, *, base: str = DASHBOARD_PATH) -> str:
    """The patient page under the dashboard's `base` (with its trailing slash)."""
    return f"{base}{PATIENTS_SEGMENT}{patient_id}"


@dataclass(frozen=True, slots=True)
class PublicLinks:
    """Absolute links to the dashboard at the configured public address
    (HEIMVAKT_PUBLIC_URL): never from a request's Host header, which a caller controls (a
    poisoned link in a notification would be a phishing link)."""

    public_url: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"public_url must be an absolute http(s) URL, not {self.public_url!r}")

    def patient(self, patient_id: UUID) -> str:
        return f"{self.public_url.rstrip('/')}{patient_path(patient_id)}"

    def worklist(self) -> str:
        return f"{self.public_url.rstrip('/')}{DASHBOARD_PATH}"
