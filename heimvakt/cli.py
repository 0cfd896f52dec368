"""The `heimvakt` command.

Help is plain text (no Rich panels, no `<bool>` type placeholders): every option says what it
does, its unit and its default, for an administrator who is not a programmer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from core.logs import configure_logging
from core.settings import Settings
from heimvakt.cli_common import SecretOutput, emit_broker_config
from heimvakt.cli_common import settings_or_exit as _settings
from heimvakt.devices_cli import devices as devices_group

EXAMPLES = """\b
Examples:
  heimvakt up --demo                    invented patients and simulated devices
  heimvakt up --host 0.0.0.0 --port 8080
                                        listen on every network interface, port 8080
  heimvakt doctor                       check the database and the broker
  heimvakt migrate                      bring the database schema up to date
  heimvakt admin "Anne Admin" --username anne
                                        the first administrator, with a password log-in
  heimvakt up --help                    the options of one command

Settings come from HEIMVAKT_* environment variables (README.md lists them)."""

app = typer.Typer(
    help="Heimvakt: digital home follow-up for COPD and heart failure.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_DEFAULT_HOST = Settings.model_fields["http_host"].default
_DEFAULT_PORT = Settings.model_fields["http_port"].default


@app.callback()
def main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Log what every part does (INFO), not only warnings and errors. Off by default.",
        ),
    ] = False,
) -> None:
    configure_logging(verbose=verbose)


@app.command()
def up(
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Seed ten invented patients and run simulated devices. Off by default.",
        ),
    ] = False,
    host: Annotated[
        str,
        typer.Option(
            envvar="HEIMVAKT_HTTP_HOST",
            metavar="ADDRESS",
            help="Network address the API and dashboard listen on; 0.0.0.0 for every interface.",
        ),
    ] = _DEFAULT_HOST,
    port: Annotated[
        int,
        typer.Option(
            envvar="HEIMVAKT_HTTP_PORT",
            metavar="PORT",
            help="TCP port the API and dashboard listen on.",
        ),
    ] = _DEFAULT_PORT,
) -> None:
    """Run the platform: ingest, API and dashboard.

    Applies pending migrations first; Ctrl-C stops it.
    """
    from heimvakt.platform import run  # noqa: PLC0415  # keeps `heimvakt --help` fast

    run(_settings(demo=demo or None, http_host=host, http_port=port))


@app.command()
def ingest(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            show_default=False,
            help="TCP port for Prometheus metrics (with --workers N: PORT to PORT+N-1)."
            " Default: no metrics.",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", help="Number of worker processes on one shared subscription."
        ),
    ] = 1,
) -> None:
    """Run more ingest workers, for scale-out.

    Give every worker its own HEIMVAKT_MQTT_CLIENT_ID and the same HEIMVAKT_INGEST_SHARED_GROUP.
    With --workers N this process supervises N workers, <client id>-1 to -N, in that group
    (`ingest` if none is set), and restarts any that dies.
    """
    settings = _settings()
    if workers > 1:
        from heimvakt.scale import run_workers  # noqa: PLC0415
        from heimvakt.worker import ingest_client_id  # noqa: PLC0415

        raise typer.Exit(
            run_workers(
                workers=workers,
                client_id=ingest_client_id(settings),
                shared_group=settings.ingest_shared_group,
                metrics_port=metrics_port,
                verbose=logging.getLogger().isEnabledFor(logging.INFO),
            )
        )
    from heimvakt.worker import run_ingest  # noqa: PLC0415

    run_ingest(settings, metrics_port=metrics_port)


@app.command()
def gateway(  # noqa: PLR0917  # typer takes the options as parameters
    device: Annotated[
        str, typer.Argument(metavar="DEVICE_ID", help="The device it speaks for (its login).")
    ],
    outbox: Annotated[
        Path, typer.Argument(metavar="OUTBOX", help="The SQLite outbox file (made if missing).")
    ],
    broker: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            show_default=False,
            help="mqtt://ID:PASSWORD@HOST:PORT (mqtts:// for TLS) with the device's own login."
            " Default: HEIMVAKT_GATEWAY_BROKER_URL, which keeps the password off the command"
            " line.",
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--input", metavar="FILE", help="Native JSON lines to send; - reads standard input."
        ),
    ] = "-",
    simulate: Annotated[
        str | None,
        typer.Option(
            metavar="KIND",
            show_default=False,
            help="Instead of input lines, a simulated device of this kind (pulse_oximeter,"
            " blood_pressure_monitor, scale, thermometer, peak_flow_meter) measures every"
            " --every seconds. Default: none.",
        ),
    ] = None,
    every: Annotated[
        float, typer.Option(min=1, metavar="SECONDS", help="How often --simulate measures.")
    ] = 60.0,
    capacity: Annotated[
        int, typer.Option(min=1, metavar="N", help="Measurements the outbox keeps at most.")
    ] = 100_000,
    battery: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=100,
            metavar="PERCENT",
            show_default=False,
            help="Battery charge to report. Default: none reported.",
        ),
    ] = None,
    exit_when_empty: Annotated[
        bool,
        typer.Option(
            "--exit-when-empty",
            help="Exit once the input has ended and everything is delivered."
            " Default: run until stopped.",
        ),
    ] = False,
) -> None:
    """Run the reference home gateway: every measurement is on disk before it is sent, and is
    sent again after any outage or restart until the broker acknowledges it (docs/devices.md).

    Input lines: {"measured_at": "2026-11-30T08:00:00+01:00", "readings": [{"code": "spo2",
    "value": 95, "unit": "%"}]}; without measured_at the gateway's clock stamps the measurement.
    """
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from core.clock import SystemClock  # noqa: PLC0415
    from core.mqtt import BrokerAddress  # noqa: PLC0415
    from devices.gateway import (  # noqa: PLC0415
        Gateway,
        Outbox,
        read_measurements,
        run_gateway,
        simulated_measurements,
    )
    from devices.simulator import TYPICAL  # noqa: PLC0415
    from heimvakt.worker import until_signalled  # noqa: PLC0415

    settings = _settings()
    if simulate is not None and simulate not in TYPICAL:
        typer.echo(f"Refusing to start: no simulated {simulate!r} ({', '.join(TYPICAL)})", err=True)
        raise typer.Exit(2)
    try:
        address = BrokerAddress.parse(broker or os.environ.get("HEIMVAKT_GATEWAY_BROKER_URL", ""))
    except ValueError as error:
        typer.echo(f"Refusing to start: {error}", err=True)
        raise typer.Exit(2) from error
    kept = Outbox(outbox, capacity=capacity)
    runner = Gateway(
        broker=address,
        device_id=device,
        topic_prefix=settings.mqtt_topic_prefix,
        outbox=kept,
        clock=SystemClock(),
        battery=battery,
    )
    stop = threading.Event()
    runner.start()
    try:
        with until_signalled(stop):
            if simulate is not None:
                measured = simulated_measurements(simulate, every=every, stop=stop)
                bad = run_gateway(runner, measured, stop=stop, exit_when_empty=exit_when_empty)
            elif source == "-":  # never closed: the input thread may be blocked reading it
                bad = run_gateway(
                    runner, read_measurements(sys.stdin), stop=stop, exit_when_empty=exit_when_empty
                )
            else:
                with Path(source).open(encoding="utf-8") as lines:
                    bad = run_gateway(
                        runner, read_measurements(lines), stop=stop, exit_when_empty=exit_when_empty
                    )
    finally:
        runner.stop()
        kept.close()
    raise typer.Exit(1 if bad or runner.refused else 0)


@app.command()
def simulate(
    days: Annotated[
        int, typer.Option(min=1, max=30, metavar="DAYS", help="Past days to send, up to today.")
    ] = 30,
    seed: Annotated[
        int, typer.Option(metavar="N", help="The same seed gives the same readings.")
    ] = 1,
    copies: Annotated[
        int, typer.Option(min=1, metavar="N", help="Patients enrolled per scenario.")
    ] = 1,
) -> None:
    """Enrol the scenario patients (stable and deteriorating COPD and heart failure, one who
    stops measuring, ...) in a running installation and send their past days through the real
    ingest, each device with its own broker login. Needs HEIMVAKT_DATABASE_URL and
    HEIMVAKT_MQTT_URL; the expected alerts are listed at the end (docs/devices.md)."""
    import uuid  # noqa: PLC0415
    from datetime import timedelta  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from core.clock import SystemClock  # noqa: PLC0415
    from core.mqtt import BrokerAddress  # noqa: PLC0415
    from devices.scenarios import SCENARIOS, mornings  # noqa: PLC0415
    from heimvakt.simulate import (  # noqa: PLC0415
        DevicePublishers,
        do_enrol,
        first_morning,
        send_mornings,
    )

    settings = _settings()
    if not settings.database_url or not settings.mqtt_url:
        typer.echo(
            "Refusing: set HEIMVAKT_DATABASE_URL and HEIMVAKT_MQTT_URL to a running installation",
            err=True,
        )
        raise typer.Exit(2)
    clock = SystemClock()
    start = first_morning(clock.now(), days)
    scenarios = [s for s in SCENARIOS for _ in range(copies)]
    tag = f"{seed}-{uuid.uuid4().hex[:4]}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        with conn.transaction():
            enrolled = do_enrol(
                conn, scenarios=scenarios, tag=tag, since=start - timedelta(days=1),
                now=clock.now(),
            )  # fmt: skip
        publishers = DevicePublishers(
            BrokerAddress.parse(settings.mqtt_url),
            topic_prefix=settings.mqtt_topic_prefix,
            passwords={d: p for e in enrolled for d, p in e.passwords.items()},
        )
        try:
            planned = list(mornings(scenarios, seed=seed, days=days, start=start))
            with typer.progressbar(planned, label="Sending") as progress:
                sent = send_mornings(conn, enrolled, progress, publishers=publishers, now=clock.now)
            acknowledged = publishers.wait_acknowledged()
        finally:
            publishers.close()
    typer.echo(f"{len(enrolled)} patients, {sent} messages ({tag})")
    for one in enrolled:
        expected = ", ".join(sorted(one.scenario.expected)) or "none"
        typer.echo(f"  {one.scenario.name}: expected alerts {expected}")
    if not acknowledged:
        typer.echo("Not every message was acknowledged by the broker", err=True)
        raise typer.Exit(1)


@app.command(
    "mosquitto-security", short_help="Mosquitto's dynamic-security JSON from a password file."
)
def mosquitto_security(
    passwd: Annotated[
        typer.FileText,
        typer.Argument(metavar="PASSWORD_FILE", help="A mosquitto_passwd file, or - for stdin."),
    ],
    output: SecretOutput = None,
    platform_user: Annotated[
        list[str] | None,
        typer.Option(
            metavar="USERNAME",
            show_default=False,
            help="A platform login (reads every device topic); repeat for more."
            " Default: heimvakt-ingest.",
        ),
    ] = None,
) -> None:
    """Make Mosquitto's dynamic-security JSON from the password file (deploy/mosquitto/README.md).

    Every login but the platform's is a device: it must connect with its device id as client id,
    may publish only on its own topics under HEIMVAKT_MQTT_TOPIC_PREFIX, and subscribes to nothing.
    """

    from heimvakt.mosquitto import INGEST_USER, PasswordFileError, dynamic_security_config  # noqa: PLC0415

    try:
        config = dynamic_security_config(
            passwd.read(),
            topic_prefix=_settings().mqtt_topic_prefix,
            platform_users=platform_user or [INGEST_USER],
        )
    except PasswordFileError as error:
        typer.echo(f"Refusing: {error}", err=True)
        raise typer.Exit(1) from error
    emit_broker_config(config, output)


app.add_typer(devices_group, name="devices")

tokens = typer.Typer(help="Issue and revoke device tokens for HTTP ingest.")
app.add_typer(tokens, name="device-token")


@tokens.command("issue")
def issue_token(
    device_id: Annotated[
        str, typer.Argument(metavar="DEVICE_ID", help="The device's id, as registered.")
    ],
) -> None:
    """Print a new token for the device. It is shown once and stored only as a hash."""
    import psycopg  # noqa: PLC0415

    from core.clock import SystemClock  # noqa: PLC0415
    from devices.tokens import do_issue_token  # noqa: PLC0415
    from heimvakt.platform import database_service  # noqa: PLC0415

    with database_service(_settings()) as (url, _), psycopg.connect(url) as conn:
        try:
            token = do_issue_token(conn, device_id=device_id, now=SystemClock().now())
        except LookupError as error:
            typer.echo(f"No such device: {device_id}", err=True)
            raise typer.Exit(1) from error
    typer.echo(token)


@tokens.command("revoke")
def revoke_token(
    prefix: Annotated[
        str,
        typer.Argument(metavar="PREFIX", help="The token's first characters, e.g. hv_AbCdEfGh."),
    ],
) -> None:
    """Revoke a token by its prefix (the non-secret start of it, e.g. hv_AbCdEfGh)."""
    import psycopg  # noqa: PLC0415

    from core.clock import SystemClock  # noqa: PLC0415
    from devices.tokens import do_revoke_token  # noqa: PLC0415
    from heimvakt.platform import database_service  # noqa: PLC0415

    with database_service(_settings()) as (url, _), psycopg.connect(url) as conn:
        revoked = do_revoke_token(conn, prefix=prefix, now=SystemClock().now())
    if not revoked:
        typer.echo(f"No token with prefix {prefix}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked {prefix}")


@app.command("admin")
def create_administrator(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The administrator's full name.")],
    *,
    organisation: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            show_default=False,
            help="The organisation they work for, made if none has this name (staff log in"
            " only while employed). Required: no default.",
        ),
    ],
    username: Annotated[
        str | None,
        typer.Option(
            metavar="USERNAME",
            show_default=False,
            help="User name for a password log-in on the built-in issuer. Default: none.",
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            show_default=False,
            help="An external identity issuer, e.g. https://helseid-sts.nhn.no. Default: none.",
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            show_default=False,
            help="The person's id (`sub`) at that issuer. Default: none.",
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            metavar="KIND",
            help="A new organisation's kind: hospital_department, municipal_service or gp_office.",
        ),
    ] = "hospital_department",
) -> None:
    """Create the first administrator.

    The administrator then enrols everyone else through the API. Give --username for a
    password log-in (the password is asked for, or read from HEIMVAKT_ADMIN_PASSWORD), or
    --issuer and --subject for a HelseID identity. Staff log in only while employed, so
    --organisation names where the administrator works.
    """
    import os  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from care.models import OrganisationKind  # noqa: PLC0415
    from care.people import (  # noqa: PLC0415
        do_add_employment,
        do_create_staff,
        do_link_identity,
    )
    from care.service import do_create_organisation  # noqa: PLC0415
    from core.auth import StaffRole  # noqa: PLC0415
    from core.clock import SystemClock  # noqa: PLC0415
    from core.local_accounts import do_create_local_account  # noqa: PLC0415
    from heimvakt.platform import database_service, local_issuer_id  # noqa: PLC0415

    external = issuer is not None or subject is not None
    if (username is not None and external) or (
        username is None and (issuer is None or subject is None)
    ):
        typer.echo("Give either --username, or --issuer and --subject", err=True)
        raise typer.Exit(2)
    kinds = [str(k) for k in OrganisationKind]
    if kind not in kinds:
        typer.echo(f"Give a --kind of {', '.join(kinds)}", err=True)
        raise typer.Exit(2)
    settings = _settings()
    password = None
    if username is not None:
        password = os.environ.get("HEIMVAKT_ADMIN_PASSWORD") or typer.prompt(
            "Password", hide_input=True, confirmation_prompt=True
        )
    with (
        database_service(settings) as (url, _),
        psycopg.connect(url) as conn,
        conn.transaction(),
    ):
        staff = do_create_staff(conn, display_name=name, role=StaffRole.ADMINISTRATOR)
        found = conn.execute(
            "SELECT id FROM organisations WHERE name = %s ORDER BY created_at LIMIT 1",
            (organisation,),
        ).fetchone()
        employer = (
            found[0]
            if found is not None
            else do_create_organisation(conn, name=organisation, kind=OrganisationKind(kind))
        )
        do_add_employment(
            conn, staff_id=staff.id, organisation_id=employer, since=SystemClock().now()
        )
        if username is not None and password is not None:
            try:
                account = do_create_local_account(
                    conn, username=username, password=password, demo=settings.demo
                )
            except ValueError as error:
                typer.echo(str(error), err=True)
                raise typer.Exit(1) from error
            issuer, subject = local_issuer_id(settings), str(account)
        assert issuer is not None
        assert subject is not None
        do_link_identity(conn, issuer=issuer, subject=subject, staff_id=staff.id)
    typer.echo(f"Administrator {name} created ({staff.id})")


@app.command()
def sweep(
    every: Annotated[
        float,
        typer.Option(min=1.0, metavar="SECONDS", help="Seconds between two runs (at least 1)."),
    ] = 30.0,
) -> None:
    """Run time-based rules and escalation until Ctrl-C."""
    import threading  # noqa: PLC0415

    from core.clock import SystemClock  # noqa: PLC0415
    from core.db import open_pool  # noqa: PLC0415
    from heimvakt.platform import database_service  # noqa: PLC0415
    from heimvakt.worker import message_memory, run_sweeper, until_signalled  # noqa: PLC0415

    settings = _settings()
    with (
        database_service(settings) as (url, _),
        open_pool(url, size=2, name="heimvakt-sweep") as pool,
    ):
        stop = threading.Event()
        with until_signalled(stop):
            run_sweeper(
                pool,
                clock=SystemClock(),
                stop=stop,
                keep_messages=message_memory(settings),
                every=every,
            )


@app.command()
def dispatch(
    poll_seconds: Annotated[
        float,
        typer.Option(
            min=0.05,
            metavar="SECONDS",
            help="Seconds to wait before looking again when nothing is due (at least 0.05).",
        ),
    ] = 0.2,
) -> None:
    """Deliver the notification outbox until Ctrl-C.

    E-mail, signed webhooks, and SMS/chat/push through Apprise.
    """
    import threading  # noqa: PLC0415

    from alerts.dispatch import serve  # noqa: PLC0415
    from heimvakt.platform import database_service  # noqa: PLC0415
    from heimvakt.worker import until_signalled  # noqa: PLC0415

    settings = _settings()
    with database_service(settings) as (url, _):
        stop = threading.Event()
        with until_signalled(stop):
            serve(settings, database_url=url, stop=stop, poll_seconds=poll_seconds)


@app.command()
def retention() -> None:
    """Delete readings older than the retention period.

    The period is HEIMVAKT_READINGS_RETENTION_DAYS; run this daily, e.g. by cron. The default
    is not set: every reading is kept and this command deletes nothing. The smallest allowed
    value is 30 days.
    """
    from datetime import timedelta  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from care.retention import do_apply_retention  # noqa: PLC0415
    from core.clock import SystemClock  # noqa: PLC0415
    from heimvakt.platform import database_service  # noqa: PLC0415

    settings = _settings()
    if settings.readings_retention_days is None:
        typer.echo("HEIMVAKT_READINGS_RETENTION_DAYS is not set: readings are kept")
        return
    keep = timedelta(days=settings.readings_retention_days)
    with database_service(settings) as (url, _), psycopg.connect(url, autocommit=True) as conn:
        retained = do_apply_retention(conn, now=SystemClock().now(), keep=keep)
    days = settings.readings_retention_days
    typer.echo(f"deleted {retained.deleted} readings older than {days} days")
    if retained.chunks_dropped:
        typer.echo(f"dropped {retained.chunks_dropped} TimescaleDB chunks")
    if retained.waiting_until is not None:
        typer.echo(
            f"readings older than {days} days in a compressed chunk go when it ends,"
            f" at {retained.waiting_until.isoformat()}"
        )


export = typer.Typer(help="Export patients' data in standard formats.")
app.add_typer(export, name="export")


@export.command("fhir")
def export_fhir(
    output: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Folder for the NDJSON files.")
    ] = Path("fhir-export"),
    patient: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PATIENT_ID", help="A patient to export (repeat for more; default: none)."
        ),
    ] = None,
    everyone: Annotated[
        bool,
        typer.Option("--all", help="Export every patient of the installation. Off by default."),
    ] = False,
) -> None:
    """Write FHIR R4 NDJSON bulk files (Patient, Device, Observation) for the patients.

    The export is recorded in the access log, as the operator running it.
    """
    import getpass  # noqa: PLC0415
    from uuid import UUID  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from care.national_ids import NationalIds  # noqa: PLC0415
    from core.auth import Principal, load_or_create_issuer_key  # noqa: PLC0415
    from core.clock import SystemClock  # noqa: PLC0415
    from fhir_facade.export import all_patients, export_ndjson  # noqa: PLC0415
    from fhir_facade.queries import count_observations  # noqa: PLC0415
    from heimvakt.platform import database_service  # noqa: PLC0415

    if everyone == bool(patient):
        typer.echo("Give either --patient (one or more) or --all", err=True)
        raise typer.Exit(2)
    try:
        chosen = [UUID(p) for p in patient or []]
    except ValueError as error:
        typer.echo(f"Not a patient id: {error}", err=True)
        raise typer.Exit(2) from error
    operator = getpass.getuser()
    principal = Principal(kind="system", id=operator, name=operator, role="operator")
    settings = _settings()
    keys = NationalIds.from_installation_key(load_or_create_issuer_key(settings.issuer_key_path()))
    with database_service(settings) as (url, _), psycopg.connect(url) as conn:
        if everyone:
            chosen = all_patients(conn)
        total = count_observations(conn, patient_ids=chosen)
        with typer.progressbar(length=total, label="Observations", file=None) as bar:
            counts = export_ndjson(
                conn,
                patient_ids=chosen,
                directory=output,
                principal=principal,
                now=SystemClock().now(),
                national_ids=keys,
                progress=bar.update,
            )
    for kind, count in counts.items():
        typer.echo(f"{output / f'{kind}.ndjson'}: {count}")


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending database migrations and exit."""
    from core.migrate import load_migrations, migrate  # noqa: PLC0415
    from heimvakt.doctor import timescaledb_note  # noqa: PLC0415
    from heimvakt.platform import database_service  # noqa: PLC0415

    with database_service(_settings()) as (database_url, description):
        typer.echo(description)
        report = migrate(database_url)
    typer.echo(f"applied: {', '.join(report.applied) or 'nothing'}")
    for line in timescaledb_note([m for m in load_migrations() if m.label in report.skipped]):
        typer.echo(line)
    for problem in report.problems:
        typer.echo(f"problem: {problem}")


@app.command()
def doctor() -> None:
    """Check the database and broker; exit 1 on a problem.

    Reports which mode is active, the versions seen, and any problem found. What only
    TimescaleDB would add is information, not a problem.
    """
    from heimvakt.doctor import diagnose  # noqa: PLC0415

    problems = diagnose(_settings(), echo=typer.echo)
    raise typer.Exit(1 if problems else 0)
