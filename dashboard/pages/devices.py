"""The device registry page: register a device (its broker login is shown once), see every
device, and hand a free one to a patient in your care, without SQL."""

from __future__ import annotations

from uuid import UUID

from dash import dcc, html
from dash.development.base_component import Component

from core.i18n import Translator
from dashboard.formatting import NO_VALUE
from dashboard.labels import device_kind_name
from devices.service import Provisioned, RegistryEntry
from devices.staff import Registry

KINDS = (
    "pulse_oximeter",
    "blood_pressure_monitor",
    "scale",
    "thermometer",
    "peak_flow_meter",
    "spirometer",
)
NEW_ID, NEW_KIND, NEW_SERIAL, REGISTER = (
    "device-new-id",
    "device-new-kind",
    "device-new-serial",
    "device-register",
)
HAND_OUT, HAND_OUT_PATIENT = "hand-out", "hand-out-patient"


def devices_page(registry: Registry, *, t: Translator) -> Component:
    return html.Section(
        [
            html.Div(
                [
                    html.H1(t("Devices")),
                    html.P(
                        t(
                            "Register the devices you hand out, and give each to a patient in "
                            "your care. A device measures for one patient at a time."
                        ),
                        className="summary",
                    ),
                ],
                className="page-heading",
            ),
            _register_form(t),
            html.Section(
                [html.H2(t("Registered devices")), _table(registry, t=t)], className="card"
            ),
        ],
        className="devices-page",
    )


def _register_form(t: Translator) -> Component:
    return html.Section(
        [
            html.H2(t("Register a device")),
            html.Div(
                [
                    html.Label(t("Device id"), htmlFor=NEW_ID),
                    dcc.Input(id=NEW_ID, type="text", maxLength=64, debounce=False),
                    html.Label(t("Kind"), htmlFor=NEW_KIND),
                    dcc.Dropdown(
                        id=NEW_KIND,
                        options=[{"label": device_kind_name(k, t), "value": k} for k in KINDS],
                        value=KINDS[0],
                        clearable=False,
                    ),
                    html.Label(t("Serial number (optional)"), htmlFor=NEW_SERIAL),
                    dcc.Input(id=NEW_SERIAL, type="text", maxLength=64),
                    html.Button(t("Register"), id=REGISTER, className="register-device"),
                ],
                className="device-form",
            ),
        ],
        className="card",
    )


def _table(registry: Registry, *, t: Translator) -> Component:
    if not registry.devices:
        return html.P(t("No devices registered yet."), className="empty")
    header = html.Thead(
        html.Tr(
            [
                html.Th(t("Device"), scope="col"),
                html.Th(t("Kind"), scope="col"),
                html.Th(t("Serial number"), scope="col"),
                html.Th(t("In use"), scope="col"),
            ]
        )
    )
    rows = [
        html.Tr(
            [
                html.Td(d.id, className="device-id"),
                html.Td(device_kind_name(d.kind, t)),
                html.Td(d.serial or NO_VALUE),
                html.Td(_use(d, registry.patients, t=t)),
            ]
        )
        for d in registry.devices
    ]
    return html.Table([header, html.Tbody(rows)], className="worklist devices-registry")


def _use(device: RegistryEntry, patients: dict[UUID, str], *, t: Translator) -> Component | str:
    """Revoked, with someone (named only if in the viewer's care), or free to hand out."""
    if device.revoked_at is not None:
        return t("Revoked")
    if device.patient_id is not None:
        return patients.get(device.patient_id, t("With a patient outside your care"))
    if not patients:
        return t("Free")
    return html.Div(
        [
            dcc.Dropdown(
                id={"type": HAND_OUT_PATIENT, "device": device.id},
                options=[{"label": name, "value": str(pid)} for pid, name in patients.items()],
                placeholder=t("Hand out to"),
            ),
            html.Button(
                t("Hand out"), id={"type": HAND_OUT, "device": device.id}, className="hand-out"
            ),
        ],
        className="hand-out-form",
    )


def registered_notice(provisioned: Provisioned, *, t: Translator) -> Component:
    """The new device's broker login, this once: it is stored only as a hash."""
    device = provisioned.device.id
    return html.Div(
        [
            html.P(
                t("{device} is registered. Its broker login, shown only now:").format(device=device)
            ),
            html.Dl(
                [
                    html.Dt(t("User name and client id")),
                    html.Dd(html.Code(device)),
                    html.Dt(t("Password")),
                    html.Dd(html.Code(provisioned.broker_password, className="broker-password")),
                ]
            ),
        ],
        role="status",
        className="status-ok",
    )
