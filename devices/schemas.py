"""What a device is, as the API, the dashboard and the CLI accept it: one set of rules."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from core import catalog
from core.fields import Input

DEVICE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
"""As the broker needs a login to be (deploy/mosquitto/README.md): a topic level, no colon."""


def _device_id(value: str) -> str:
    if DEVICE_ID.match(value) is None or value.startswith("heimvakt-"):
        raise ValueError("1 to 64 of A-Z a-z 0-9 . _ -, not starting with heimvakt-")
    return value


def _measurement(value: str) -> str:
    found = catalog.lookup(value)
    if found is None:
        raise ValueError(f"{value!r} is not a measurement of the catalog (LOINC code or alias)")
    return found.code


DeviceId = Annotated[str, AfterValidator(_device_id)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class DeviceIn(Input):
    id: DeviceId = Field(description="The device's id: its broker login and client id")
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")] = Field(
        description="pulse_oximeter, blood_pressure_monitor, scale, thermometer, ..."
    )
    vendor: Text | None = None
    model: Text | None = None
    serial: Text | None = None
    measurements: list[Annotated[str, AfterValidator(_measurement)]] = Field(
        default_factory=list, max_length=10, description="LOINC codes or catalog aliases"
    )

    def registration(self) -> dict[str, Any]:
        """The keywords of devices.service.do_provision_device."""
        return {
            "device_id": self.id,
            "kind": self.kind,
            "vendor": self.vendor,
            "model": self.model,
            "serial": self.serial,
            "measurements": self.measurements,
        }
