"""The outbox dispatcher: delivers pending notifications at least once, with backoff.

Each due row is claimed with ``FOR UPDATE SKIP LOCKED`` in a transaction of its own and the row
lock is held while the channel sends. So several dispatchers can run side by side without
sending a row twice, and a dispatcher killed mid-send leaves its row pending (the database
rolls the transaction back when the connection drops): a later run sends it again with the same
idempotency key. At-least-once, then, and the rare duplicate is recognisable.

A failure that retrying may cure is tried again after a growing, jittered delay; after
`max_attempts`, or at once for a permanent failure, the row is dead, and a red *technical*
finding on the patient says so in the same transaction: a notification that cannot be
delivered must itself be seen. It takes the path every finding takes (alerts/lifecycle.py):
routed to the unit responsible now, escalated, snoozable like any other alert.

The link in a message (to the patient's page) is added here, when it is sent, from the
configured public address (core/links.py): nothing before the outbox needs to know it.

Run it with ``python -m alerts.dispatch`` (settings from HEIMVAKT_* variables) until SIGTERM.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

from alerts.channels import (
    AppriseChannel,
    Channel,
    DeliveryError,
    DemoOutboxChannel,
    EmailChannel,
    PermanentDeliveryError,
    WebhookChannel,
)
from alerts.findings import Category, Finding, Severity
from alerts.library.catalogue import RULES_BY_ID
from alerts.lifecycle import do_apply_batch
from alerts.notify import do_notify_technical_contacts
from alerts.outbox import with_link
from core.clock import Clock, SystemClock
from core.db import open_pool
from core.links import PublicLinks
from core.logs import configure_logging
from core.loops import Backoff, Pulse
from core.settings import KNOWN_DEFAULT_SECRETS, Settings

log = logging.getLogger(__name__)

UNDELIVERABLE: Final = "notification_undeliverable"
JITTER = 0.1
"""±10 %: dispatchers that failed together do not all retry in the same second."""
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class _Due:
    id: UUID
    alert_id: int | None
    patient_id: UUID | None
    reminder_id: int | None
    channel: str
    address: str
    message: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one attempt (for logs and tests)."""

    notification_id: UUID
    state: str
    attempts: int
    error: str | None = None


class Dispatcher:
    """Delivers the outbox through `channels` (keyed by ``notifications.channel``)."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        channels: Mapping[str, Channel],
        clock: Clock,
        links: PublicLinks,
        max_attempts: int = 12,
        base_delay: float = 5.0,
        max_delay: float = 600.0,
        rng: random.Random | None = None,
        pulse: Pulse | None = None,
    ) -> None:
        """`pulse` beats after every attempt and every look at an empty outbox: a round that
        takes longer than a channel's timeout is a stuck dispatcher. `links` makes the link
        each message carries to the patient's page."""
        if max_attempts < 1 or base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need max_attempts >= 1 and 0 < base_delay <= max_delay")
        self.pool = pool
        self.channels = dict(channels)
        self.clock = clock
        self.links = links
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.rng = rng or random.SystemRandom()
        self.pulse = pulse

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failure: base, 2 base, 4 base … up to max, ±10 %."""
        delay = min(self.max_delay, self.base_delay * 2 ** min(max(attempts - 1, 0), 40))
        return timedelta(seconds=delay * self.rng.uniform(1 - JITTER, 1 + JITTER))

    def run_once(self, limit: int = 50) -> int:
        """Attempt up to `limit` due notifications; returns how many were attempted."""
        attempted = 0
        with self.pool.connection() as conn:
            while attempted < limit:
                found = self.do_attempt_next(conn)
                if self.pulse is not None:
                    self.pulse.beat()
                if found is None:
                    break
                attempted += 1
        return attempted

    def do_attempt_next(self, conn: psycopg.Connection) -> Outcome | None:
        """Claim, send and record one due notification; None when nothing is due."""
        with conn.transaction():
            now = self.clock.now()
            with conn.cursor(row_factory=class_row(_Due)) as cur:
                due = cur.execute(
                    """
                    SELECT n.id, n.alert_id, a.patient_id, n.reminder_id, n.channel,
                           n.address, n.message, n.attempts
                      FROM notifications n LEFT JOIN alerts a ON a.id = n.alert_id
                     WHERE n.state = 'pending' AND n.next_attempt_at <= %s
                     ORDER BY n.next_attempt_at, n.id
                     LIMIT 1
                       FOR UPDATE OF n SKIP LOCKED
                    """,
                    (now,),
                ).fetchone()
            if due is None:
                return None
            permanent, error = self._send(due)
            # The send may have taken a while: record with the time it ended.
            now = self.clock.now()
            if error is None:
                conn.execute(
                    "UPDATE notifications SET state = 'delivered', delivered_at = %s,"
                    " attempts = attempts + 1, last_error = NULL WHERE id = %s",
                    (now, due.id),
                )
                return Outcome(due.id, "delivered", due.attempts + 1)
            attempts = due.attempts + 1
            error = error[:MAX_ERROR_LENGTH]
            if permanent or attempts >= self.max_attempts:
                conn.execute(
                    "UPDATE notifications SET state = 'dead', attempts = %s, last_error = %s"
                    " WHERE id = %s",
                    (attempts, error, due.id),
                )
                self._do_raise_undeliverable(conn, due=due, error=error, now=now)
                log.warning(
                    "notification %s is dead after %d attempts: %s", due.id, attempts, error
                )
                return Outcome(due.id, "dead", attempts, error)
            conn.execute(
                "UPDATE notifications SET attempts = %s, next_attempt_at = %s, last_error = %s"
                " WHERE id = %s",
                (attempts, now + self.backoff(attempts), error, due.id),
            )
            log.info("notification %s failed (attempt %d): %s", due.id, attempts, error)
            return Outcome(due.id, "pending", attempts, error)

    def _send(self, due: _Due) -> tuple[bool, str | None]:
        """(permanent, error); error None when delivered."""
        channel = self.channels.get(due.channel)
        if channel is None:
            # Retryable: the operator may configure the channel before the row dies.
            return False, f"the {due.channel} channel is not configured"
        # A reminder has no alert, so no patient here: its reader is the patient, and the
        # dashboard's root is their own view.
        link = (
            self.links.worklist() if due.patient_id is None else self.links.patient(due.patient_id)
        )
        try:
            channel.send(
                address=due.address,
                message=with_link(due.message, link=link),
                idempotency_key=due.id,
            )
        except PermanentDeliveryError as error:
            return True, str(error) or type(error).__name__
        except DeliveryError as error:
            return False, str(error) or type(error).__name__
        except Exception as error:
            # A bug in a channel must not stop the other notifications; it is retried and,
            # if it persists, dies visibly like any other failure.
            log.exception("channel %s failed unexpectedly", due.channel)
            return False, f"{type(error).__name__}: {error}"
        return False, None

    def _do_raise_undeliverable(
        self, conn: psycopg.Connection, *, due: _Due, error: str, now: datetime
    ) -> None:
        """A red technical finding on the notification's patient (one alert per channel while
        it is unresolved; repeats count up), applied as every finding is. When it opens a new
        alert, the unit's technical contacts hear of it on another channel than the one that
        failed. A dead reminder to a patient raises none: it stays visible as a dead outbox
        row, and the missing measurement it was about becomes the nurse's alert at its second
        deadline anyway (alerts/reminders.py)."""
        if due.reminder_id is not None:
            return
        if due.patient_id is None:
            log.error("dead notification %s has no alert to raise a technical alert on", due.id)
            return
        finding = Finding(
            rule=UNDELIVERABLE,
            rule_version=RULES_BY_ID[UNDELIVERABLE].version,
            instance=f"{UNDELIVERABLE}:{due.channel}",
            severity=Severity.RED,
            category=Category.TECHNICAL,
            measured_at=now,
            details={"notification_id": str(due.id), "channel": due.channel, "error": error},
        )
        applied = do_apply_batch(conn, batch={due.patient_id: [(finding, False)]}, now=now)
        if not applied.opened:
            return
        row = conn.execute(
            "SELECT id, episode_id, routed_to FROM alerts WHERE patient_id = %s"
            " AND rule_id = %s AND state <> 'resolved'",
            (due.patient_id, finding.instance),
        ).fetchone()
        if row is not None and row[2] is not None:
            do_notify_technical_contacts(
                conn,
                alert_id=row[0],
                episode_id=row[1],
                unit=row[2],
                failed_channel=due.channel,
                now=now,
            )

    def run_forever(self, stop: threading.Event, poll_seconds: float = 1.0) -> None:
        """Deliver until `stop` is set. No exception ends it: a failed round (a database
        outage, a bug) is logged and tried again after a growing pause."""
        backoff = Backoff(first=poll_seconds, most=max(poll_seconds, 30.0))
        while not stop.is_set():
            try:
                attempted = self.run_once()
            except Exception:
                log.exception("the dispatcher's round failed; trying again")
                stop.wait(backoff.failed())
                continue
            backoff.succeeded()
            if attempted == 0:
                stop.wait(poll_seconds)


DEMO_OUTBOX_CHANNELS = ("email", "webhook")
"""The channels that, unconfigured in demo mode, deliver to the demo outbox."""


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """The channels the settings allow: e-mail needs HEIMVAKT_SMTP_URL and webhooks
    HEIMVAKT_WEBHOOK_SECRET; rows for a channel that is not set up wait (and are retried).
    In demo mode an unconfigured e-mail or webhook channel is the demo outbox."""
    timeout = settings.notification_timeout_seconds
    channels: dict[str, Channel] = {
        "apprise": AppriseChannel(allow_private_addresses=settings.webhook_allow_private_addresses)
    }
    if settings.smtp_url:
        channels["email"] = EmailChannel(settings.smtp_url, settings.smtp_sender, timeout)
    if settings.webhook_secret:
        if not settings.demo and settings.webhook_secret.lower() in KNOWN_DEFAULT_SECRETS:
            raise ValueError("HEIMVAKT_WEBHOOK_SECRET is a default secret; set a real one")
        channels["webhook"] = WebhookChannel(
            settings.webhook_secret,
            timeout,
            allow_private_addresses=settings.webhook_allow_private_addresses,
        )
    if settings.demo:
        for name in DEMO_OUTBOX_CHANNELS:
            channels.setdefault(name, DemoOutboxChannel())
    return channels


def serve(
    settings: Settings,
    *,
    database_url: str,
    stop: threading.Event,
    poll_seconds: float = 1.0,
    pulse: Pulse | None = None,
) -> None:
    """Run a dispatcher on `database_url` until `stop` is set. The CLI calls this with the
    database it resolved (a server, or the embedded one); `heimvakt up` passes the `pulse`
    its readiness watches."""
    channels = channels_from_settings(settings)
    for missing in sorted({"email", "webhook"} - channels.keys()):
        log.warning("the %s channel is not configured; its notifications wait", missing)
    try:
        with open_pool(database_url, size=2, name="heimvakt-dispatch") as pool:
            Dispatcher(
                pool,
                channels=channels,
                clock=SystemClock(),
                links=PublicLinks(settings.public_url),
                max_attempts=settings.notification_max_attempts,
                pulse=pulse,
            ).run_forever(stop, poll_seconds)
    finally:
        for channel in channels.values():
            if isinstance(channel, WebhookChannel):
                channel.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m alerts.dispatch [--poll-seconds S]``: deliver until SIGTERM or SIGINT."""
    args = list(sys.argv[1:] if argv is None else argv)
    poll_seconds = 1.0
    if args[:1] == ["--poll-seconds"] and len(args) == 2:
        poll_seconds = float(args[1])
    elif args:
        sys.stderr.write("usage: python -m alerts.dispatch [--poll-seconds S]\n")
        return 2
    configure_logging(verbose=True)
    settings = Settings()
    if settings.database_url is None:
        sys.stderr.write("HEIMVAKT_DATABASE_URL is required\n")
        return 2
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serve(settings, database_url=settings.database_url, stop=stop, poll_seconds=poll_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
