"""Ways a notification leaves Heimvakt: e-mail, signed webhooks and Apprise (SMS, chat, push).

A channel either delivers or says whether trying again can help: `DeliveryError` (the target
is down, slow or busy: the dispatcher retries with backoff) or `PermanentDeliveryError` (the
address or the message is refused: retrying cannot help, the notification is dead and a
technical alert says so). Errors that concern the whole installation (a wrong SMTP password, a
missing TLS offer) are retryable: an operator can fix them before the notifications die.

Every attempt carries the outbox row's id as an idempotency key, so a receiver can drop the
duplicate that a crash between sending and recording the delivery leaves behind.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import smtplib
import socket
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit
from uuid import UUID

import apprise
import httpx

from core.clock import Clock, SystemClock

log = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_SECONDS = 300
"""How old a webhook's timestamp may be before a receiver refuses it as a replay."""


class DeliveryError(Exception):
    """Not delivered this time; trying again later may work."""


class PermanentDeliveryError(Exception):
    """Not delivered, and trying again cannot help (bad address, message refused)."""


class Channel(Protocol):
    def send(self, *, address: str, message: Mapping[str, Any], idempotency_key: UUID) -> None:
        """Deliver `message` to `address`, or raise `DeliveryError`/`PermanentDeliveryError`."""
        ...


def message_text(message: Mapping[str, Any], *, idempotency_key: UUID) -> str:
    """The plain-text body every text channel sends: what the outbox message holds, no more."""
    if message.get("kind") == "reminder":
        # A reminder to a patient (alerts/reminders.py): its words come translated.
        return (
            "\n".join(
                [
                    str(message.get("text", "")),
                    "",
                    f"{message.get('link_text', '')}: {message.get('link', '')}",
                    "",
                    f"Ref. {idempotency_key}",
                ]
            )
            + "\n"
        )
    lines = [
        str(message.get("title", "Heimvakt alert")),
        "",
        f"Severity: {message.get('severity', '')}",
        f"Unit: {message.get('unit', '')}",
    ]
    reasons = message.get("reasons")
    if isinstance(reasons, list) and reasons:
        lines += ["", "Why:"] + [
            f"- {reason.get('text', '')}" for reason in reasons if isinstance(reason, Mapping)
        ]
    lines += [
        "",
        f"Log in to see the alert: {message.get('link', '')}",
        "",
        f"Reference: {idempotency_key}",
    ]
    return "\n".join(lines) + "\n"


def _title(message: Mapping[str, Any]) -> str:
    return " ".join(str(message.get("title", "Heimvakt alert")).split())


# E-mail ----------------------------------------------------------------------------------------


def _email_address(address: str) -> str:
    """A bare addr-spec, or `PermanentDeliveryError`: nothing that could smuggle in a header."""
    _name, parsed = parseaddr(address)
    if (
        not parsed
        or parsed != address.strip()
        or parsed.count("@") != 1
        or any(c.isspace() or ord(c) < 32 for c in parsed)
    ):
        raise PermanentDeliveryError("not a plain e-mail address")
    return parsed


class EmailChannel:
    """SMTP with smtplib: smtp://[user:password@]host[:port][?starttls=required] or smtps://.

    smtp:// upgrades with STARTTLS whenever the server offers it and, with
    ``?starttls=required``, refuses to send in clear text. smtps:// is TLS from the first
    byte. A password is never sent without TLS.
    """

    def __init__(
        self,
        smtp_url: str,
        sender: str,
        timeout: float = 10.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("the SMTP URL must be smtp://host[:port] or smtps://host[:port]")
        starttls = parse_qs(parts.query).get("starttls", ["auto"])[-1]
        if starttls not in ("auto", "required"):
            raise ValueError("starttls must be 'auto' or 'required'")
        try:
            self.sender = _email_address(sender)
        except PermanentDeliveryError:
            raise ValueError(f"the sender {sender!r} is not a plain e-mail address") from None
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.starttls_required = starttls == "required"
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "")
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        # EHLO with the sender's domain: smtplib's default, socket.getfqdn(), can take
        # seconds of reverse DNS on a container.
        self.domain = self.sender.rsplit("@", 1)[1]

    def compose(
        self, *, recipient: str, message: Mapping[str, Any], idempotency_key: UUID
    ) -> EmailMessage:
        """The e-mail; its Message-ID comes from the idempotency key, so mail systems and
        people can recognise a duplicate."""
        mail = EmailMessage()
        try:
            mail["From"] = self.sender
            mail["To"] = recipient
            mail["Subject"] = _title(message)
            mail["Date"] = formatdate(usegmt=True)
            mail["Message-ID"] = f"<{idempotency_key}@{self.domain}>"
            mail["X-Heimvakt-Idempotency-Key"] = str(idempotency_key)
            # RFC 3834: no vacation auto-replies to an alert.
            mail["Auto-Submitted"] = "auto-generated"
        except ValueError as error:
            raise PermanentDeliveryError(f"the message cannot be an e-mail: {error}") from None
        mail.set_content(message_text(message, idempotency_key=idempotency_key))
        return mail

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.domain,
                timeout=self.timeout,
                context=self.ssl_context,
            )
        smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.domain, timeout=self.timeout)
        try:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            elif self.starttls_required:
                raise DeliveryError("the SMTP server does not offer STARTTLS, which is required")
            elif self.user is not None:
                raise DeliveryError("refusing to send the SMTP password without TLS")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, *, address: str, message: Mapping[str, Any], idempotency_key: UUID) -> None:
        recipient = _email_address(address)
        mail = self.compose(recipient=recipient, message=message, idempotency_key=idempotency_key)
        try:
            with self._connect() as smtp:
                if self.user is not None:
                    smtp.login(self.user, self.password)
                smtp.send_message(mail, from_addr=self.sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _text in error.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentDeliveryError(f"SMTP refused the recipient: {codes}") from None
            raise DeliveryError(f"SMTP deferred the recipient: {codes}") from None
        except smtplib.SMTPDataError as error:
            if error.smtp_code >= 500:
                raise PermanentDeliveryError(
                    f"SMTP refused the message: {error.smtp_code}"
                ) from None
            raise DeliveryError(f"SMTP deferred the message: {error.smtp_code}") from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(f"SMTP {error.smtp_code}: {_short(error.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"SMTP: {type(error).__name__}: {error}") from None


def _short(value: bytes | str, limit: int = 200) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return " ".join(text.split())[:limit]


# Webhooks --------------------------------------------------------------------------------------


def sign(*, secret: str, timestamp: int | str, body: bytes | str) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>.<body>"): the timestamp is signed
    with the body, so an old request cannot be replayed with a fresh timestamp."""
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    *,
    secret: str,
    timestamp: int | str,
    body: bytes | str,
    signature: str,
    now: datetime,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """For receivers: whether a webhook is ours, unchanged and fresh (within `tolerance`
    seconds of `now`, either way, so a captured request cannot be replayed later)."""
    try:
        sent = int(str(timestamp))
    except ValueError:
        return False
    if abs(now.timestamp() - sent) > tolerance:
        return False
    expected = sign(secret=secret, timestamp=sent, body=body)
    return hmac.compare_digest(expected.encode(), signature.encode())


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def checked_addresses(
    host: str, port: int, *, allow_private_addresses: bool
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses `host` resolves to, if every one of them is public.

    The one server-side request forgery rule (OWASP API7) for every staff-chosen target, a
    webhook's or an Apprise URL's host alike: a host with a loopback, private, link-local
    (cloud metadata) or otherwise local address is refused (`PermanentDeliveryError`) unless
    `allow_private_addresses`; a host that does not resolve now may later (`DeliveryError`).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise DeliveryError(f"cannot resolve the host {host!r}: {error}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise DeliveryError(f"the host {host!r} has no address")
    if not allow_private_addresses and not all(_is_public(a) for a in addresses):
        raise PermanentDeliveryError(f"the host {host!r} has a private or local address")
    return addresses


def check_target(channel: str, address: str, *, allow_private_addresses: bool) -> None:
    """Whether `address` is an acceptable target for `channel`, by the rules the channel
    applies when it sends: the API calls this when staff name a target (subscriptions,
    escalation routes), and each channel checks again at send time, since a host's addresses
    can change in between. Raises `PermanentDeliveryError` or `DeliveryError`."""
    if channel == "email":
        _email_address(address)
    elif channel == "webhook":
        webhook_target(address, allow_private_addresses=allow_private_addresses)
    elif channel == "apprise":
        apprise_target(address, allow_private_addresses=allow_private_addresses)
    else:
        raise PermanentDeliveryError(f"no such channel: {channel!r}")


def webhook_target(
    address: str, *, allow_private_addresses: bool
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL to connect to (host replaced by its checked address, so nothing resolves it a
    second time to rebind it), the Host header and the TLS server name."""
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentDeliveryError("a webhook address must be an http(s) URL")
    if parts.username or parts.password:
        raise PermanentDeliveryError("a webhook address may not carry credentials")
    if parts.scheme == "http" and not allow_private_addresses:
        raise PermanentDeliveryError("a webhook address must use https")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PermanentDeliveryError("the webhook address has a bad port") from None
    pinned = checked_addresses(host, port, allow_private_addresses=allow_private_addresses)[0]
    netloc = f"[{pinned}]:{port}" if pinned.version == 6 else f"{pinned}:{port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return url, {"Host": host_header}, extensions


class WebhookChannel:
    """POST the message as JSON, signed with HMAC-SHA256 over the timestamp and the body.

    The URL is staff-supplied, so it is a server-side request forgery risk (OWASP API7): by
    default only https to public addresses is allowed, the connection goes to the address that
    was checked (no second DNS lookup to rebind), redirects are not followed and the response
    body is never read. `allow_private_addresses` lifts this for tests and closed networks.
    """

    def __init__(
        self,
        secret: str,
        timeout: float = 10.0,
        *,
        allow_private_addresses: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self.secret = secret
        self.allow_private_addresses = allow_private_addresses
        self.clock = clock or SystemClock()
        # trust_env off: a proxy from the environment would reach the target by name, around
        # the address check.
        self.client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def send(self, *, address: str, message: Mapping[str, Any], idempotency_key: UUID) -> None:
        url, headers, extensions = webhook_target(
            address, allow_private_addresses=self.allow_private_addresses
        )
        body = json.dumps(
            {**message, "idempotency_key": str(idempotency_key)},
            separators=(",", ":"),
            sort_keys=True,
            ensure_ascii=False,
        ).encode()
        timestamp = int(self.clock.now().timestamp())
        headers |= {
            "Content-Type": "application/json",
            "Idempotency-Key": str(idempotency_key),
            "X-Heimvakt-Timestamp": str(timestamp),
            "X-Heimvakt-Signature": sign(secret=self.secret, timestamp=timestamp, body=body),
        }
        try:
            # Streamed and closed unread: the receiver's answer is untrusted and may be large.
            with self.client.stream(
                "POST", url, content=body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
        except httpx.InvalidURL as error:
            raise PermanentDeliveryError(f"bad webhook address: {error}") from None
        except httpx.HTTPError as error:
            raise DeliveryError(f"webhook: {type(error).__name__}: {error}") from None
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise PermanentDeliveryError(f"webhook answered {status}; redirects are not followed")
        if 400 <= status < 500 and status not in (408, 429):
            raise PermanentDeliveryError(f"webhook answered {status}")
        raise DeliveryError(f"webhook answered {status}")


# Apprise ---------------------------------------------------------------------------------------


def apprise_target(address: str, *, allow_private_addresses: bool) -> apprise.NotifyBase:
    """The Apprise service for `address`, if the host it would reach passes the webhook's rule.

    Services with a fixed public endpoint (Telegram, Slack, Pushover …) take no host from the
    URL. Those whose URL names the host (``json://``, ``ntfy://``, ``gotify://``, ``mailto://``
    with its SMTP server …) get the webhook's rules: encrypted (``jsons://``, ``ntfys://``),
    and to public addresses only, unless `allow_private_addresses`.
    """
    service = apprise.Apprise.instantiate(address, asset=_APPRISE_ASSET)
    if service is None:
        raise PermanentDeliveryError("not a usable Apprise URL")
    if not any("{host}" in template for template in getattr(service, "templates", ())):
        return service
    if not service.secure and not allow_private_addresses:
        raise PermanentDeliveryError("an Apprise URL that names a host must be encrypted")
    # E-mail connects to its SMTP server (named, or derived from the address's domain).
    host = getattr(service, "smtp_host", None) or service.host
    if not host:
        raise PermanentDeliveryError("the Apprise URL names no host")
    port = service.port or (443 if service.secure else 80)
    checked_addresses(host, port, allow_private_addresses=allow_private_addresses)
    return service


_APPRISE_ASSET = apprise.AppriseAsset(storage_mode="memory")
"""In memory only: Apprise may otherwise keep state files under the user's cache."""


class AppriseChannel:
    """SMS, chat and push through an Apprise URL per recipient (e.g. ``ntfys://…``,
    ``mailtos://…``, ``jsons://…``). Apprise reports only success or failure, so a failure is
    retryable; an address Apprise cannot parse, or one `apprise_target` refuses, is permanent.
    Apprise cannot carry headers, so the idempotency key is in the text as a reference.

    Apprise resolves the host itself, so unlike a webhook the connection is not pinned to the
    address checked a moment before: the check at send time narrows, but cannot close, the
    window for a host that changes its address (DNS rebinding).
    """

    def __init__(self, *, allow_private_addresses: bool = False) -> None:
        self.allow_private_addresses = allow_private_addresses

    def send(self, *, address: str, message: Mapping[str, Any], idempotency_key: UUID) -> None:
        service = apprise_target(address, allow_private_addresses=self.allow_private_addresses)
        notifier = apprise.Apprise(asset=_APPRISE_ASSET)
        notifier.add(service)
        text = message_text(message, idempotency_key=idempotency_key)
        if not notifier.notify(body=text, title=_title(message)):
            raise DeliveryError("Apprise could not deliver the notification")


# Demo ------------------------------------------------------------------------------------------


class DemoOutboxChannel:
    """Demo mode, for a channel that is not configured: nothing leaves the machine.

    The notification is accepted as it is, so the dispatcher marks its outbox row delivered
    and the dashboard's demo outbox shows it: the nurse sees what a real installation would
    have sent, instead of the terminal warning that the channel is not configured.
    """

    def send(self, *, address: str, message: Mapping[str, Any], idempotency_key: UUID) -> None:
        log.info("demo outbox: %r to %s (%s)", _title(message), address, idempotency_key)
