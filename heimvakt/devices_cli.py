"""`heimvakt devices`: the device registry from the command line, for an operator with access
to the database (no staff log-in, as with `heimvakt device-token`), and the broker's
configuration exported from it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from pydantic import ValidationError

from core.clock import SystemClock
from heimvakt.cli_common import (
    SecretOutput,
    emit_broker_config,
    settings_or_exit,
    write_private,
)

if TYPE_CHECKING:
    import psycopg

    from devices.schemas import DeviceIn
    from devices.service import Provisioned

# The registry's modules (FastAPI, psycopg, the care component) are imported by each command,
# not here: `heimvakt` loads this module for every command, the gateway's included.

devices = typer.Typer(
    help="Register, hand out and revoke devices; export the broker's logins.",
    no_args_is_help=True,
)

DeviceArgument = Annotated[
    str, typer.Argument(metavar="DEVICE_ID", help="The device's id, as registered.")
]
PatientArgument = Annotated[UUID, typer.Argument(metavar="PATIENT_ID", help="The patient's id.")]
At = Annotated[
    datetime | None,
    typer.Option(
        "--at", metavar="TIME", show_default=False, help="When, with time zone. Default: now."
    ),
]


@contextmanager
def _database() -> Iterator[psycopg.Connection]:
    import psycopg  # noqa: PLC0415

    from heimvakt.platform import database_service  # noqa: PLC0415

    with database_service(settings_or_exit()) as (url, _), psycopg.connect(url) as conn:
        yield conn


def _moment(at: datetime | None) -> datetime:
    if at is None:
        return SystemClock().now()
    if at.tzinfo is None:
        typer.echo("--at needs a time zone, e.g. 2026-12-01T08:00:00+01:00", err=True)
        raise typer.Exit(2)
    return at


def _refuse(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


@devices.command("register")
def register(  # noqa: PLR0917  # typer takes the options as parameters
    device_id: DeviceArgument,
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="pulse_oximeter, scale, thermometer, ...")
    ],
    vendor: Annotated[
        str | None, typer.Option(metavar="TEXT", show_default=False, help="Default: none.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="TEXT", show_default=False, help="Default: none.")
    ] = None,
    serial: Annotated[
        str | None, typer.Option(metavar="TEXT", show_default=False, help="Default: none.")
    ] = None,
    measurement: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CODE",
            show_default=False,
            help="A LOINC code or alias it measures; repeat. Default: none listed.",
        ),
    ] = None,
) -> None:
    """Register a device and print its broker password: shown once, stored only as a hash."""
    from devices.schemas import DeviceIn  # noqa: PLC0415
    from devices.service import DeviceExistsError  # noqa: PLC0415

    try:
        body = DeviceIn(
            id=device_id,
            kind=kind,
            vendor=vendor,
            model=model,
            serial=serial,
            measurements=measurement or [],
        )
    except ValidationError as error:
        raise _refuse(f"Refusing: {_first_error(error)}") from error
    with _database() as conn:
        try:
            provisioned = _provision(conn, body)
        except DeviceExistsError as error:
            raise _refuse(str(error)) from error
    typer.echo(provisioned.broker_password)


@devices.command("import")
def import_devices(
    source: Annotated[
        typer.FileText,
        typer.Argument(
            metavar="CSV_FILE",
            help="Columns id,kind,vendor,model,serial,measurements (;-separated),patient_id.",
        ),
    ],
    passwords: Annotated[
        Path,
        typer.Argument(
            metavar="LOGINS_FILE", help="Where the new broker logins go (CSV, mode 600)."
        ),
    ],
) -> None:
    """Register many devices at once (a delivery of 200), each in its own transaction: a bad
    row is reported by line and the others are kept. Exit status 1 if any row was refused."""
    import psycopg  # noqa: PLC0415

    from devices.schemas import DeviceIn  # noqa: PLC0415
    from devices.service import do_assign_device  # noqa: PLC0415

    rows = list(csv.DictReader(source))
    created: list[tuple[str, str]] = []
    refused: list[str] = []
    now = SystemClock().now()
    with _database() as conn, typer.progressbar(rows, label="Registering") as progress:
        for line, row in enumerate(progress, start=2):
            try:
                body = DeviceIn(
                    id=row.get("id") or "",
                    kind=row.get("kind") or "",
                    vendor=row.get("vendor") or None,
                    model=row.get("model") or None,
                    serial=row.get("serial") or None,
                    measurements=[m for m in (row.get("measurements") or "").split(";") if m],
                )
                patient = UUID(row["patient_id"]) if row.get("patient_id") else None
                with conn.transaction():
                    provisioned = _provision(conn, body)
                    if patient is not None:
                        do_assign_device(
                            conn, device_id=body.id, patient_id=patient, valid_from=now
                        )
            except ValidationError as error:
                refused.append(f"line {line}: {_first_error(error)}")
            except (ValueError, LookupError, psycopg.Error) as error:
                refused.append(f"line {line}: {error}")
            else:
                created.append((body.id, provisioned.broker_password))
    with _private_csv(passwords) as out:
        out.writerow(["username", "client_id", "password"])
        out.writerows((device_id, device_id, password) for device_id, password in created)
    typer.echo(f"{len(created)} registered, {len(refused)} refused; logins in {passwords}")
    for reason in refused:
        typer.echo(reason, err=True)
    if refused:
        raise typer.Exit(1)


@devices.command("assign")
def assign(device_id: DeviceArgument, patient_id: PatientArgument, at: At = None) -> None:
    """The device measures for the patient from --at (default now)."""
    from devices.service import AssignmentConflictError, do_assign_device  # noqa: PLC0415

    with _database() as conn:
        try:
            do_assign_device(
                conn, device_id=device_id, patient_id=patient_id, valid_from=_moment(at)
            )
        except (LookupError, AssignmentConflictError) as error:
            raise _refuse(str(error)) from error


@devices.command("unassign")
def unassign(device_id: DeviceArgument, patient_id: PatientArgument, at: At = None) -> None:
    """The device stops measuring for the patient at --at (default now)."""
    from devices.service import do_unassign_device  # noqa: PLC0415

    with _database() as conn:
        if not do_unassign_device(conn, device_id=device_id, patient_id=patient_id, at=_moment(at)):
            raise _refuse(f"{device_id} does not measure for {patient_id} then")


@devices.command("revoke")
def revoke(device_id: DeviceArgument) -> None:
    """Take the device out of service: its tokens at once, its broker login at the next export."""
    from devices.service import do_revoke_device  # noqa: PLC0415

    with _database() as conn:
        if not do_revoke_device(conn, device_id=device_id, now=SystemClock().now()):
            raise _refuse(f"No such device: {device_id}")


@devices.command("rotate-password")
def rotate_password(device_id: DeviceArgument) -> None:
    """Print a new broker password for the device (the old one works until the next export)."""
    from devices.service import do_rotate_broker_password  # noqa: PLC0415

    with _database() as conn:
        try:
            password = do_rotate_broker_password(conn, device_id=device_id, now=SystemClock().now())
        except LookupError as error:
            raise _refuse(str(error)) from error
    typer.echo(password)


@devices.command("export-broker")
def export_broker(
    passwd: Annotated[
        typer.FileText,
        typer.Argument(
            metavar="PASSWORD_FILE",
            help="The platform's logins (a mosquitto_passwd file); devices come from the registry.",
        ),
    ],
    output: SecretOutput = None,
) -> None:
    """Write Mosquitto's dynamic-security JSON for the platform's logins and every device in
    service. Run it after every change, then restart the broker (the ingest reconnects by
    itself and loses nothing: its session is persistent)."""
    from devices.service import broker_logins, revoked_devices  # noqa: PLC0415
    from heimvakt.mosquitto import (  # noqa: PLC0415
        INGEST_USER,
        PasswordFileError,
        dynamic_security_config,
        with_registry,
    )

    settings = settings_or_exit()
    with _database() as conn:
        registry = broker_logins(conn)
        revoked = revoked_devices(conn)
    try:
        config = dynamic_security_config(
            with_registry(passwd.read(), registry=registry, revoked=revoked),
            topic_prefix=settings.mqtt_topic_prefix,
            platform_users=[INGEST_USER],
        )
    except PasswordFileError as error:
        raise _refuse(f"Refusing: {error}") from error
    emit_broker_config(config, output)


def _provision(conn: psycopg.Connection, body: DeviceIn) -> Provisioned:
    from devices.service import do_provision_device  # noqa: PLC0415

    return do_provision_device(conn, now=SystemClock().now(), **body.registration())


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


@contextmanager
def _private_csv(path: Path) -> Iterator[Any]:
    write_private(path, "")
    with path.open("w", newline="", encoding="utf-8") as file:
        yield csv.writer(file)
