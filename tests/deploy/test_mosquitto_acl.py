"""The broker's access rules, deploy/mosquitto/acl, as a real Mosquitto 2.x enforces them.

The module starts its own ``mosquitto`` on a free loopback port with the project's
mosquitto.conf and ACL (only paths, listener and log destination rewritten to a temp dir) and a
password file made with ``mosquitto_passwd``. Each test then logs in as the ingest service or as a
device over MQTT 3.1.1, the protocol the ingest and the devices speak.

A message the ACL forbids is dropped without a word under MQTT 3.1.1: the publisher still gets
its PUBACK. So a "not delivered" check first waits for a control message that is allowed, sent
after the forbidden one, and then watches for a short quiet period in which nothing else may
arrive.
"""

from __future__ import annotations

import os
import pwd
import queue
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

MOSQUITTO_DIR = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
_SBIN_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"]
)
MOSQUITTO = shutil.which("mosquitto", path=_SBIN_PATH)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd", path=_SBIN_PATH)

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None or MOSQUITTO_PASSWD is None,
    reason="needs the mosquitto broker and mosquitto_passwd (Debian: apt-get install mosquitto)",
)

DEVICES = "heimvakt/v1/devices"
DEVICE_TOPIC_KINDS = ("readings", "senml", "fhir", "status")
INGEST = "heimvakt-ingest"
DEV_A = "dev-a"
DEV_B = "dev-b"
WILDCARD_USER = "+"  # CVE-2017-7650: %u would become a wildcard level
OBSERVER = "test-observer"  # test-only user appended to the temp ACL; reads every topic
PASSWORDS = {
    INGEST: "ingest-Secret-7c1e",
    DEV_A: "dev-a-Secret-52aa",
    DEV_B: "dev-b-Secret-0d9f",
    WILDCARD_USER: "wildcard-Secret-e3b4",
    OBSERVER: "observer-Secret-81f0",
}

WAIT_SECONDS = 5.0  # upper bound for anything that should happen
QUIET_SECONDS = 1.5  # how long "nothing arrives" is watched for, after a control message


def device_topic(device_id: str, kind: str = "readings") -> str:
    return f"{DEVICES}/{device_id}/{kind}"


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    log: Path


@dataclass
class Session:
    """One MQTT 3.1.1 client; what the broker sends it lands in queues the test reads."""

    client: mqtt.Client
    connacks: queue.Queue[tuple[ReasonCode, bool]] = field(default_factory=queue.Queue)
    subacks: queue.Queue[list[ReasonCode]] = field(default_factory=queue.Queue)
    messages: queue.Queue[mqtt.MQTTMessage] = field(default_factory=queue.Queue)

    def subscribe(self, *topic_filters: str) -> list[ReasonCode]:
        """Subscribe with QoS 1 and return the broker's SUBACK codes."""
        result, _mid = self.client.subscribe([(f, 1) for f in topic_filters])
        assert result == mqtt.MQTT_ERR_SUCCESS
        return self.subacks.get(timeout=WAIT_SECONDS)

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish with QoS 1 and wait for the PUBACK, so the broker has routed the message."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=WAIT_SECONDS)
        assert info.is_published(), f"no PUBACK for {topic}"

    def expect(self, topic: str, payload: bytes) -> None:
        """The next message is exactly this one."""
        try:
            message = self.messages.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            pytest.fail(f"{topic} {payload!r} was not delivered within {WAIT_SECONDS} s")
        assert (message.topic, message.payload) == (topic, payload)

    def expect_quiet(self) -> None:
        """Nothing more arrives within the quiet period."""
        try:
            message = self.messages.get(timeout=QUIET_SECONDS)
        except queue.Empty:
            return
        pytest.fail(f"unexpectedly delivered: {message.topic} {message.payload!r}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


Connect = Callable[..., Session]


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config_for_test(project_config: str, overrides: dict[str, str]) -> str:
    """The project's mosquitto.conf with each overridden setting's value replaced.

    Every overridden setting must appear in the project's file, so the test notices when, say,
    the password file or the ACL file is no longer configured.
    """
    lines: list[str] = []
    replaced: set[str] = set()
    for line in project_config.splitlines():
        key = line.split(maxsplit=1)[0] if line.strip() and not line.startswith("#") else ""
        if key in overrides:
            lines.append(f"{key} {overrides[key]}")
            replaced.add(key)
        else:
            lines.append(line)
    missing = overrides.keys() - replaced
    assert not missing, f"mosquitto.conf does not set {sorted(missing)}"
    return "\n".join(lines) + "\n"


def _make_password_file(path: Path, passwords: dict[str, str]) -> None:
    assert MOSQUITTO_PASSWD is not None
    for index, (username, password) in enumerate(passwords.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run(
            [MOSQUITTO_PASSWD, *create, "-b", str(path), username, password],
            check=True,
            capture_output=True,
            timeout=10,
        )


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mosquitto exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"mosquitto did not listen on port {port} within {WAIT_SECONDS} s")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    assert MOSQUITTO is not None
    workdir = tmp_path_factory.mktemp("mosquitto")
    acl = workdir / "acl"
    shutil.copyfile(MOSQUITTO_DIR / "acl", acl)
    with acl.open("a") as extra:
        extra.write(f"\n# Test only: a spy that sees every topic.\nuser {OBSERVER}\ntopic read #\n")
    _make_password_file(workdir / "passwd", PASSWORDS)
    port = _free_loopback_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        _config_for_test(
            (MOSQUITTO_DIR / "mosquitto.conf").read_text(),
            {
                "listener": f"{port} 127.0.0.1",
                "password_file": str(workdir / "passwd"),
                "acl_file": str(acl),
                "persistence_location": f"{workdir}/",
                "log_dest": "stdout",
            },
        )
        # Run as whoever runs the tests: as root, Mosquitto would otherwise switch to the
        # "mosquitto" user, who cannot read the temp directory.
        + f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
    )
    log = workdir / "mosquitto.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=output, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_listening(process, port, log)
        yield Broker(host="127.0.0.1", port=port, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def connect(broker: Broker) -> Iterator[Connect]:
    """Log in as someone; every session is closed when the test ends."""
    sessions: list[Session] = []

    def _connect(
        username: str | None,
        password: str | None = None,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        must_succeed: bool = True,
    ) -> Session:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:12]}",
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        session = Session(client)

        def on_connect(
            client: mqtt.Client,
            _userdata: object,
            flags: mqtt.ConnectFlags,
            reason: ReasonCode,
            _properties: object,
        ) -> None:
            if reason.is_failure:
                client.disconnect()  # a refused login is final: no reconnect loop
            session.connacks.put((reason, flags.session_present))

        client.on_connect = on_connect
        client.on_subscribe = lambda _c, _u, _mid, codes, _p: session.subacks.put(codes)
        client.on_message = lambda _c, _u, message: session.messages.put(message)
        if username is not None:
            client.username_pw_set(
                username, PASSWORDS.get(username) if password is None else password
            )
        sessions.append(session)
        client.connect(broker.host, broker.port, keepalive=10)
        client.loop_start()
        if must_succeed:
            reason, _present = session.connacks.get(timeout=WAIT_SECONDS)
            assert not reason.is_failure, f"{username} could not log in: {reason}"
        return session

    yield _connect
    for session in sessions:
        session.close()


def _payload() -> bytes:
    return f'{{"test": "{uuid.uuid4().hex}"}}'.encode()


# --- What is allowed ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DEVICE_TOPIC_KINDS)
def test_device_publishes_on_its_own_topics_and_the_ingest_receives_it(
    connect: Connect, kind: str
) -> None:
    ingest = connect(INGEST)
    codes = ingest.subscribe(f"{DEVICES}/+/{kind}")
    assert [code.value for code in codes] == [1], "ingest's subscription granted with QoS 1"
    device = connect(DEV_A)

    payload = _payload()
    device.publish(device_topic(DEV_A, kind), payload)

    ingest.expect(device_topic(DEV_A, kind), payload)


def test_ingest_receives_through_a_shared_subscription(connect: Connect) -> None:
    ingest = connect(INGEST)
    ingest.subscribe(f"$share/ingest/{DEVICES}/+/readings")
    device = connect(DEV_A)

    payload = _payload()
    device.publish(device_topic(DEV_A), payload)

    ingest.expect(device_topic(DEV_A), payload)


def test_ingest_persistent_session_keeps_readings_published_while_it_was_away(
    connect: Connect,
) -> None:
    client_id = f"heimvakt-ingest-{uuid.uuid4().hex[:8]}"
    first = connect(INGEST, client_id=client_id, clean_session=False)
    first.subscribe(f"{DEVICES}/+/readings")
    first.close()

    payload = _payload()
    connect(DEV_A).publish(device_topic(DEV_A), payload)

    again = connect(INGEST, client_id=client_id, clean_session=False, must_succeed=False)
    reason, session_present = again.connacks.get(timeout=WAIT_SECONDS)
    assert not reason.is_failure
    assert session_present
    again.expect(device_topic(DEV_A), payload)


# --- What devices may not do -------------------------------------------------------------------


def test_device_cannot_publish_as_another_device(connect: Connect) -> None:
    ingest = connect(INGEST)
    ingest.subscribe(*(f"{DEVICES}/+/{kind}" for kind in DEVICE_TOPIC_KINDS))
    device_a = connect(DEV_A)

    for kind in DEVICE_TOPIC_KINDS:
        device_a.publish(device_topic(DEV_B, kind), b'{"spoofed": true}')
    control = _payload()
    device_a.publish(device_topic(DEV_A), control)

    ingest.expect(device_topic(DEV_A), control)
    ingest.expect_quiet()


def test_device_cannot_publish_outside_its_own_four_topics(connect: Connect) -> None:
    observer = connect(OBSERVER)
    observer.subscribe("#")
    device_a = connect(DEV_A)

    for topic in (
        f"{DEVICES}/{DEV_A}/commands",
        f"{DEVICES}/{DEV_A}",
        f"{DEVICES}/{DEV_A}/readings/extra",
        "heimvakt/v1/alerts",
        "anything",
    ):
        device_a.publish(topic, b"not allowed")
    control = _payload()
    device_a.publish(device_topic(DEV_A), control)

    observer.expect(device_topic(DEV_A), control)
    observer.expect_quiet()


def test_device_subscriptions_deliver_nothing_not_even_its_own_readings(
    connect: Connect,
) -> None:
    device_a = connect(DEV_A)
    device_a.subscribe(f"{DEVICES}/#", device_topic(DEV_A), f"$share/spy/{DEVICES}/+/readings", "#")
    ingest = connect(INGEST)
    ingest.subscribe(f"{DEVICES}/+/readings")

    from_b, from_a = _payload(), _payload()
    connect(DEV_B).publish(device_topic(DEV_B), from_b)
    device_a.publish(device_topic(DEV_A), from_a)

    ingest.expect(device_topic(DEV_B), from_b)
    ingest.expect(device_topic(DEV_A), from_a)
    device_a.expect_quiet()


def test_username_with_a_wildcard_gets_no_pattern_access_cve_2017_7650(
    connect: Connect,
) -> None:
    """A user named "+" must not match the pattern heimvakt/v1/devices/%u/readings for every
    device id: Mosquitto grants no pattern to a username containing + or #."""
    ingest = connect(INGEST)
    ingest.subscribe(f"{DEVICES}/+/readings")
    wildcard = connect(WILDCARD_USER)

    wildcard.publish(device_topic(DEV_B), b'{"spoofed": true}')
    control = _payload()
    connect(DEV_A).publish(device_topic(DEV_A), control)

    ingest.expect(device_topic(DEV_A), control)
    ingest.expect_quiet()


def test_ingest_cannot_publish_as_a_device(connect: Connect) -> None:
    observer = connect(OBSERVER)
    observer.subscribe("#")
    ingest = connect(INGEST)

    ingest.publish(device_topic(DEV_A), b'{"spoofed": true}')
    control = _payload()
    connect(DEV_A).publish(device_topic(DEV_A), control)

    observer.expect(device_topic(DEV_A), control)
    observer.expect_quiet()


# --- Who may log in ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param(DEV_A, "wrong-password", id="wrong password"),
        pytest.param(INGEST, PASSWORDS[DEV_A], id="another user's password"),
        pytest.param("no-such-device", "whatever-Secret", id="unknown user"),
        pytest.param(None, None, id="anonymous"),
    ],
)
def test_login_is_refused(connect: Connect, username: str | None, password: str | None) -> None:
    session = connect(username, password, must_succeed=False)

    reason, _present = session.connacks.get(timeout=WAIT_SECONDS)

    assert reason.is_failure
    assert reason.getName() in {"Bad user name or password", "Not authorized"}
