"""The channels against real local servers: an aiosmtpd SMTP server (plain, STARTTLS, implicit
TLS, with and without AUTH) and an http.server webhook receiver. Also home of those servers,
which test_dispatch uses too."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alerts.channels import (
    AppriseChannel,
    DeliveryError,
    EmailChannel,
    PermanentDeliveryError,
    WebhookChannel,
    check_target,
    sign,
    verify_signature,
)
from alerts.outbox import build_message, with_link
from core.clock import ManualClock
from core.links import PublicLinks
from heimvakt.embedded import free_port

SECRET = "a-webhook-secret-for-tests-only"
PATIENT = UUID("3b0f8f5e-5d0c-4a3e-9a0e-6d3f7f1d2c11")


def a_message(*reasons: dict[str, Any]) -> dict[str, Any]:
    """A message as the dispatcher hands it to a channel: with its link."""
    message = build_message(
        alert_id=7,
        severity="red",
        unit_name="Lungeteamet, Medisinsk avdeling",
        reasons=reasons,
    )
    return with_link(message, link=PublicLinks("https://heimvakt.example/").patient(PATIENT))


# A webhook receiver ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]

    def verified(self, secret: str = SECRET) -> bool:
        return verify_signature(
            secret=secret,
            timestamp=self.headers["x-heimvakt-timestamp"],
            body=self.body,
            signature=self.headers["x-heimvakt-signature"],
            now=datetime.now(UTC),
        )


@dataclass
class WebhookReceiver:
    """http.server in a thread. Records a request as it arrives, then (optionally) holds it
    `hold_first` seconds before answering `status` — so a sender can be killed mid-send."""

    port: int = field(default_factory=free_port)
    status: int = 200
    hold_first: float = 0.0
    requests: list[Request] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/heimvakt"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(Request(self.path, headers, body))
                first = len(receiver.requests) == 1
                receiver.arrived.set()
                if first and receiver.hold_first:
                    time.sleep(receiver.hold_first)
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender is gone (killed mid-send)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def keys(self) -> list[str]:
        return [request.key for request in self.requests]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


# An SMTP server -------------------------------------------------------------------------------


class Sink:
    """aiosmtpd handler: keeps what it accepts; refuses recipients by their local part."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)  # the Controller is made without decode_data
        assert envelope.mail_from is not None
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


@dataclass
class SmtpServer:
    """A real SMTP server on 127.0.0.1; stop() closes the port, start() opens it again."""

    port: int = field(default_factory=free_port)
    options: dict[str, Any] = field(default_factory=dict)
    sink: Sink = field(default_factory=Sink)
    controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(
            self.sink, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def the_mail(server: SmtpServer) -> EmailMessage:
    assert len(server.sink.messages) == 1
    return server.sink.messages[0][2]


# E-mail ---------------------------------------------------------------------------------------


def test_email_carries_the_key_and_the_minimum(smtp: SmtpServer) -> None:
    key = uuid4()
    channel = EmailChannel(smtp.url, "varsel@heimvakt.example", 5.0)
    channel.send(address="nurse@sykehus.example", message=a_message(), idempotency_key=key)

    sender, recipients, mail = smtp.sink.messages[0]
    assert (sender, recipients) == ("varsel@heimvakt.example", ["nurse@sykehus.example"])
    assert mail["X-Heimvakt-Idempotency-Key"] == str(key)
    assert mail["Message-ID"] == f"<{key}@heimvakt.example>"
    assert mail["Subject"] == "Heimvakt: red alert for Lungeteamet, Medisinsk avdeling"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_content()
    assert f"https://heimvakt.example/app/patients/{PATIENT}" in body
    assert "Why:" not in body


def test_values_only_when_the_unit_includes_them(smtp: SmtpServer) -> None:
    channel = EmailChannel(smtp.url, "varsel@heimvakt.example", 5.0)
    with_values = a_message(
        {"rule": "threshold", "severity": "red", "text": "Outside the limits: SpO2 (low) 84 %"}
    )
    channel.send(address="a@sykehus.example", message=with_values, idempotency_key=uuid4())
    assert "- Outside the limits: SpO2 (low) 84 %" in smtp.sink.messages[0][2].get_content()


def test_a_refused_recipient_is_permanent_and_a_deferred_one_is_not(smtp: SmtpServer) -> None:
    channel = EmailChannel(smtp.url, "varsel@heimvakt.example", 5.0)
    with pytest.raises(PermanentDeliveryError, match="550"):
        channel.send(address="gone@sykehus.example", message=a_message(), idempotency_key=uuid4())
    with pytest.raises(DeliveryError, match="451"):
        channel.send(address="busy@sykehus.example", message=a_message(), idempotency_key=uuid4())
    assert smtp.sink.messages == []


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@b.example\r\nBcc: x@evil.example", "Name <a@b.example>"]
)
def test_an_address_that_is_not_a_bare_address_is_permanent(smtp: SmtpServer, address: str) -> None:
    channel = EmailChannel(smtp.url, "varsel@heimvakt.example", 5.0)
    with pytest.raises(PermanentDeliveryError):
        channel.send(address=address, message=a_message(), idempotency_key=uuid4())


def test_a_server_that_is_down_is_retryable() -> None:
    channel = EmailChannel(f"smtp://127.0.0.1:{free_port()}", "varsel@heimvakt.example", 2.0)
    with pytest.raises(DeliveryError):
        channel.send(address="a@sykehus.example", message=a_message(), idempotency_key=uuid4())


def test_starttls_when_offered_and_required_when_asked(certificate: tuple[Path, Path]) -> None:
    server = SmtpServer(
        options={"tls_context": server_tls(certificate), "require_starttls": True}
    ).start()
    try:
        channel = EmailChannel(
            f"{server.url}?starttls=required",
            "varsel@heimvakt.example",
            5.0,
            ssl_context=client_tls(certificate),
        )
        channel.send(address="a@sykehus.example", message=a_message(), idempotency_key=uuid4())
        assert len(server.sink.messages) == 1
    finally:
        server.stop()


def test_starttls_required_but_not_offered_is_not_sent_in_clear(smtp: SmtpServer) -> None:
    channel = EmailChannel(f"{smtp.url}?starttls=required", "varsel@heimvakt.example", 5.0)
    with pytest.raises(DeliveryError, match="STARTTLS"):
        channel.send(address="a@sykehus.example", message=a_message(), idempotency_key=uuid4())
    assert smtp.sink.messages == []


def test_the_password_goes_only_over_tls(certificate: tuple[Path, Path]) -> None:
    def authenticator(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"heimvakt",
            b"s3cret/%",
        )
        return AuthResult(success=ok)

    with_tls = SmtpServer(
        options={
            "tls_context": server_tls(certificate),
            "authenticator": authenticator,
            "auth_required": True,
        }
    ).start()
    try:
        channel = EmailChannel(
            f"smtp://heimvakt:s3cret%2F%25@127.0.0.1:{with_tls.port}",
            "varsel@heimvakt.example",
            5.0,
            ssl_context=client_tls(certificate),
        )
        channel.send(address="a@sykehus.example", message=a_message(), idempotency_key=uuid4())
        assert len(with_tls.sink.messages) == 1
    finally:
        with_tls.stop()

    plain = SmtpServer().start()
    try:
        channel = EmailChannel(
            f"smtp://heimvakt:s3cret@127.0.0.1:{plain.port}", "varsel@heimvakt.example", 5.0
        )
        with pytest.raises(DeliveryError, match="without TLS"):
            channel.send(address="a@sykehus.example", message=a_message(), idempotency_key=uuid4())
    finally:
        plain.stop()


def test_smtps_is_tls_from_the_first_byte(certificate: tuple[Path, Path]) -> None:
    server = SmtpServer(options={"ssl_context": server_tls(certificate)}).start()
    try:
        channel = EmailChannel(
            f"smtps://127.0.0.1:{server.port}",
            "varsel@heimvakt.example",
            5.0,
            ssl_context=client_tls(certificate),
        )
        channel.send(address="a@sykehus.example", message=a_message(), idempotency_key=uuid4())
        assert len(server.sink.messages) == 1
    finally:
        server.stop()


def test_a_bad_smtp_url_is_a_configuration_error() -> None:
    for url in ("http://mail.example", "smtp://", "smtp://mail.example?starttls=sometimes"):
        with pytest.raises(ValueError, match=r"SMTP URL|starttls"):
            EmailChannel(url, "varsel@heimvakt.example")
    with pytest.raises(ValueError, match="sender"):
        EmailChannel("smtp://mail.example", "not an address")


# Webhooks -------------------------------------------------------------------------------------


def test_a_webhook_is_signed_and_the_receiver_can_check_it(receiver: WebhookReceiver) -> None:
    key = uuid4()
    channel = WebhookChannel(SECRET, 5.0, allow_private_addresses=True)
    channel.send(address=receiver.url, message=a_message(), idempotency_key=key)
    channel.close()

    (request,) = receiver.requests
    assert request.path == "/hooks/heimvakt"
    assert request.key == str(key)
    assert request.headers["content-type"] == "application/json"
    assert request.verified()
    payload = json.loads(request.body)
    assert payload["idempotency_key"] == str(key)
    assert payload["link"] == f"https://heimvakt.example/app/patients/{PATIENT}"
    assert "reasons" not in payload

    headers, now = request.headers, datetime.now(UTC)
    timestamp, signature = headers["x-heimvakt-timestamp"], headers["x-heimvakt-signature"]
    tampered = request.body.replace(b'"red"', b'"yellow"')
    assert tampered != request.body
    assert not verify_signature(
        secret=SECRET, timestamp=timestamp, body=tampered, signature=signature, now=now
    )
    assert not verify_signature(
        secret="another-secret",
        timestamp=timestamp,
        body=request.body,
        signature=signature,
        now=now,
    )
    # A replay: the same request presented ten minutes later, or with a fresh timestamp.
    later = now + timedelta(minutes=10)
    assert not verify_signature(
        secret=SECRET, timestamp=timestamp, body=request.body, signature=signature, now=later
    )
    assert not verify_signature(
        secret=SECRET,
        timestamp=int(later.timestamp()),
        body=request.body,
        signature=signature,
        now=later,
    )
    assert not verify_signature(
        secret=SECRET, timestamp="soon", body=request.body, signature=signature, now=now
    )


def test_an_old_timestamp_fails_even_with_a_valid_signature() -> None:
    sent = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    timestamp = int(sent.timestamp())
    signature = sign(secret=SECRET, timestamp=timestamp, body=b"{}")
    check: dict[str, Any] = {
        "secret": SECRET,
        "timestamp": timestamp,
        "body": b"{}",
        "signature": signature,
    }
    assert verify_signature(**check, now=sent + timedelta(seconds=299))
    assert not verify_signature(**check, now=sent + timedelta(seconds=301))
    assert not verify_signature(**check, now=sent - timedelta(seconds=301))


def test_the_timestamp_comes_from_the_channels_clock(receiver: WebhookReceiver) -> None:
    clock = ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    channel = WebhookChannel(SECRET, 5.0, allow_private_addresses=True, clock=clock)
    channel.send(address=receiver.url, message=a_message(), idempotency_key=uuid4())
    channel.close()
    assert receiver.requests[0].headers["x-heimvakt-timestamp"] == str(int(clock.now().timestamp()))
    assert not receiver.requests[0].verified()  # 2026-11-24 is not now: a replay


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, DeliveryError),
        (503, DeliveryError),
        (408, DeliveryError),
        (429, DeliveryError),
        (400, PermanentDeliveryError),
        (404, PermanentDeliveryError),
        (410, PermanentDeliveryError),
        (302, PermanentDeliveryError),
    ],
)
def test_status_codes(receiver: WebhookReceiver, status: int, error: type[Exception]) -> None:
    receiver.status = status
    channel = WebhookChannel(SECRET, 5.0, allow_private_addresses=True)
    with pytest.raises(error, match=str(status)):
        channel.send(address=receiver.url, message=a_message(), idempotency_key=uuid4())
    channel.close()


def test_a_closed_port_and_a_slow_receiver_are_retryable() -> None:
    channel = WebhookChannel(SECRET, 0.5, allow_private_addresses=True)
    with pytest.raises(DeliveryError, match="ConnectError"):
        channel.send(
            address=f"http://127.0.0.1:{free_port()}/", message=a_message(), idempotency_key=uuid4()
        )
    slow = WebhookReceiver(hold_first=2.0).start()
    try:
        with pytest.raises(DeliveryError, match="Timeout"):
            channel.send(address=slow.url, message=a_message(), idempotency_key=uuid4())
    finally:
        slow.stop()
        channel.close()


@pytest.mark.parametrize(
    "address",
    [
        "http://127.0.0.1:9/",  # loopback
        "https://127.0.0.1/",
        "https://localhost/",
        "https://10.1.2.3/",  # private
        "https://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "http://hooks.example.com/",  # public but in clear text
        "ftp://hooks.example.com/",
        "https://user:pw@hooks.example.com/",
    ],
)
def test_webhooks_refuse_local_private_and_clear_text_targets(address: str) -> None:
    """Staff choose webhook URLs; by default none may reach inside the network (SSRF)."""
    channel = WebhookChannel(SECRET, 1.0)
    with pytest.raises(PermanentDeliveryError):
        channel.send(address=address, message=a_message(), idempotency_key=uuid4())
    channel.close()


def test_a_webhook_secret_is_required() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookChannel("", 1.0)


# Apprise --------------------------------------------------------------------------------------


def test_apprise_delivers_through_its_json_url(receiver: WebhookReceiver) -> None:
    key = uuid4()
    AppriseChannel(allow_private_addresses=True).send(
        address=f"json://127.0.0.1:{receiver.port}/apprise",
        message=a_message(),
        idempotency_key=key,
    )
    (request,) = receiver.requests
    payload = json.loads(request.body)
    assert payload["title"] == "Heimvakt: red alert for Lungeteamet, Medisinsk avdeling"
    assert f"Reference: {key}" in payload["message"]


def test_apprise_failure_is_retryable_and_a_bad_url_permanent() -> None:
    with pytest.raises(DeliveryError):
        AppriseChannel(allow_private_addresses=True).send(
            address=f"json://127.0.0.1:{free_port()}/", message=a_message(), idempotency_key=uuid4()
        )
    with pytest.raises(PermanentDeliveryError):
        AppriseChannel().send(
            address="nonsense-scheme://x", message=a_message(), idempotency_key=uuid4()
        )


@pytest.mark.parametrize(
    "address",
    [
        "json://127.0.0.1:{port}/apprise",  # loopback, clear text: the reported attack
        "jsons://127.0.0.1:{port}/apprise",  # loopback, encrypted
        "jsons://localhost:{port}/apprise",
        "ntfys://10.1.2.3/topic",  # private
        "jsons://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
        "gotify://hooks.example.com/token",  # public but in clear text
        "mailtos://user:pw@example.com?smtp=127.0.0.1",  # the SMTP host it would reach
    ],
)
def test_apprise_applies_the_webhook_rules_to_the_host_it_reaches(
    receiver: WebhookReceiver, address: str
) -> None:
    """Any staff member could subscribe ``json://127.0.0.1:…`` and the dispatcher posted there
    when an alert fired, though the same target as a webhook was refused (SSRF)."""
    target = address.format(port=receiver.port)
    with pytest.raises(PermanentDeliveryError):
        AppriseChannel().send(address=target, message=a_message(), idempotency_key=uuid4())
    with pytest.raises(PermanentDeliveryError):
        check_target("apprise", target, allow_private_addresses=False)
    assert receiver.requests == []


def test_services_with_a_fixed_endpoint_and_public_hosts_pass_the_check() -> None:
    """Telegram's or Pushover's URL names no host (their endpoint is fixed and public)."""
    for address in (
        "tgram://123456789:abcdefg_hijklmnop/12315544",
        "pover://uuuuuuuuuuuuuuuuuuuuuuuuuuuuuu@tttttttttttttttttttttttttttttt",
    ):
        check_target("apprise", address, allow_private_addresses=False)
    check_target("email", "vakt@example.org", allow_private_addresses=False)
    with pytest.raises(PermanentDeliveryError):
        check_target("webhook", "http://127.0.0.1:9/", allow_private_addresses=False)
