"""Who may log in to the broker and what each may do, as a real Mosquitto 2.x enforces it.

The module starts its own ``mosquitto`` on a free loopback port with the project's
mosquitto.conf (only paths, listener and log destination rewritten to a temp dir) and the
dynamic-security configuration that ``heimvakt mosquitto-security`` makes from a password file
made with ``mosquitto_passwd``: what an operator does (deploy/mosquitto/README.md). Each test then
logs in as the ingest service or as a device over MQTT 3.1.1, which the devices may speak.

A message the broker forbids is dropped without a word under MQTT 3.1.1: the publisher still gets
its PUBACK. So a "not delivered" check first waits for a control message that is allowed, sent
after the forbidden one, and then watches for a short quiet period in which nothing else may
arrive.
"""

from __future__ import annotations

import contextlib
import json
import queue
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from core.clock import ManualClock
from core.mqtt import BrokerAddress
from devices.simulator import SimulatedDevice, Simulator, Vital, history_times
from heimvakt.cli import app
from heimvakt.mosquitto import PasswordFileError, dynamic_security_config
from tests.broker_security import (
    DYNAMIC_SECURITY,
    MOSQUITTO,
    MOSQUITTO_PASSWD,
    WAIT_SECONDS,
    SecuredMosquitto,
    make_password_file,
)

DEVICES = "heimvakt/v1/devices"
DEVICE_TOPIC_KINDS = ("readings", "senml", "fhir", "status")
INGEST = "heimvakt-ingest"
DEV_A = "dev-a"
DEV_B = "dev-b"
SIMULATED = ("sim-ox", "sim-scale")  # the simulator's devices, sharing one password
SIMULATED_PASSWORD = "simulated-Secret-4d21"
OBSERVER = "test-observer"  # test-only login added to the exported file; reads every topic
PASSWORDS = {
    INGEST: "ingest-Secret-7c1e",
    DEV_A: "dev-a-Secret-52aa",
    DEV_B: "dev-b-Secret-0d9f",
    OBSERVER: "observer-Secret-81f0",
    **dict.fromkeys(SIMULATED, SIMULATED_PASSWORD),
}
DEVICE_LOGINS = {DEV_A, DEV_B, *SIMULATED}

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


def _export_dynamic_security(passwd: Path, output: Path) -> None:
    """What the operator runs: `heimvakt mosquitto-security passwd -o dynamic-security.json`."""
    result = CliRunner().invoke(
        app,
        ["mosquitto-security", str(passwd), "--output", str(output)],
        env={"HEIMVAKT_MQTT_TOPIC_PREFIX": "heimvakt/v1"},
    )
    assert result.exit_code == 0, result.output


def _add_observer(path: Path) -> None:
    """Test only: the observer, exported as a device, becomes a spy that reads every topic."""
    config = json.loads(path.read_text())
    [observer] = [c for c in config["clients"] if c["username"] == OBSERVER]
    del observer["clientid"]
    observer["roles"] = [{"rolename": "test-observer"}]
    config["roles"].append(
        {
            "rolename": "test-observer",
            "acls": [
                {"acltype": "subscribePattern", "topic": "#", "allow": True},
                {"acltype": "publishClientReceive", "topic": "#", "allow": True},
            ],
        }
    )
    path.write_text(json.dumps(config))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if MOSQUITTO is None or MOSQUITTO_PASSWD is None or DYNAMIC_SECURITY is None:
        pytest.skip(
            "needs mosquitto, mosquitto_passwd and the dynamic-security plugin "
            "(Debian: apt-get install mosquitto)"
        )
    workdir = tmp_path_factory.mktemp("mosquitto")
    make_password_file(workdir / "passwd", PASSWORDS)
    dynamic_security = workdir / "dynamic-security.json"
    _export_dynamic_security(workdir / "passwd", dynamic_security)
    _add_observer(dynamic_security)
    mosquitto = SecuredMosquitto(workdir, config_file=dynamic_security)
    mosquitto.start()
    try:
        yield Broker(host="127.0.0.1", port=mosquitto.port, log=mosquitto.log)
    finally:
        mosquitto.stop()


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
        if client_id is None:
            # A device connects with its device id as client id, as it must.
            device = username in DEVICE_LOGINS
            client_id = username if device else f"test-{uuid.uuid4().hex[:12]}"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
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


def test_every_device_subscription_is_refused_and_delivers_nothing(connect: Connect) -> None:
    device_a = connect(DEV_A)
    codes = device_a.subscribe(
        f"{DEVICES}/#",
        device_topic(DEV_A),
        device_topic(DEV_B),
        f"$share/spy/{DEVICES}/+/readings",
        f"$share/ingest/{DEVICES}/{DEV_B}/readings",
        "#",
        "$SYS/#",
    )
    ingest = connect(INGEST)
    ingest.subscribe(f"{DEVICES}/+/readings")

    from_b, from_a = _payload(), _payload()
    connect(DEV_B).publish(device_topic(DEV_B), from_b)
    device_a.publish(device_topic(DEV_A), from_a)

    ingest.expect(device_topic(DEV_B), from_b)
    ingest.expect(device_topic(DEV_A), from_a)
    assert [code.value for code in codes] == [0x80] * 7, "every subscription refused"
    device_a.expect_quiet()


def test_a_device_may_connect_only_with_its_own_id_as_client_id(connect: Connect) -> None:
    for client_id in (f"test-{uuid.uuid4().hex[:12]}", DEV_B, INGEST):
        session = connect(DEV_A, client_id=client_id, must_succeed=False)
        reason, _present = session.connacks.get(timeout=WAIT_SECONDS)
        assert reason.is_failure, f"{DEV_A} logged in as client {client_id}"


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


# --- Identity: client ids and shared subscriptions ----------------------------------------------

READINGS = 20


def _received(session: Session, count: int) -> list[mqtt.MQTTMessage]:
    """Up to `count` messages, each waited for at most WAIT_SECONDS."""
    messages: list[mqtt.MQTTMessage] = []
    with contextlib.suppress(queue.Empty):
        while len(messages) < count:
            messages.append(session.messages.get(timeout=WAIT_SECONDS))
    return messages


def test_a_device_cannot_connect_with_the_ingests_client_id_nor_disturb_it(
    connect: Connect,
) -> None:
    client_id = f"heimvakt-ingest-{uuid.uuid4().hex[:16]}"
    ingest = connect(INGEST, client_id=client_id, clean_session=False)
    ingest.subscribe(f"{DEVICES}/+/readings")

    thief = connect(DEV_A, client_id=client_id, clean_session=False, must_succeed=False)
    reason, _present = thief.connacks.get(timeout=WAIT_SECONDS)
    device_b = connect(DEV_B)
    sent = [_payload() for _ in range(READINGS)]
    for payload in sent:
        device_b.publish(device_topic(DEV_B), payload)

    got = [message.payload for message in _received(ingest, READINGS)]
    assert got == sent, f"the ingest got {len(got)} of {READINGS} readings"
    assert reason.is_failure, "a device logged in with the ingest's client id"


def test_a_device_cannot_take_the_backlog_queued_for_the_ingest(connect: Connect) -> None:
    client_id = f"heimvakt-ingest-{uuid.uuid4().hex[:16]}"
    first = connect(INGEST, client_id=client_id, clean_session=False)
    first.subscribe(f"{DEVICES}/+/readings")
    first.close()
    device_b = connect(DEV_B)
    sent = [_payload() for _ in range(5)]
    for payload in sent:
        device_b.publish(device_topic(DEV_B), payload)

    thief = connect(DEV_A, client_id=client_id, clean_session=False, must_succeed=False)
    reason, _present = thief.connacks.get(timeout=WAIT_SECONDS)
    thief.close()
    again = connect(INGEST, client_id=client_id, clean_session=False)

    got = [message.payload for message in _received(again, len(sent))]
    assert got == sent, f"the ingest got {len(got)} of {len(sent)} queued readings"
    assert reason.is_failure, "a device logged in with the ingest's client id"


def test_a_device_cannot_join_the_ingests_shared_subscription_group(connect: Connect) -> None:
    ingest = connect(INGEST)
    ingest.subscribe(f"$share/ingest/{DEVICES}/+/readings")
    thief = connect(DEV_A)
    codes = thief.subscribe(f"$share/ingest/{DEVICES}/+/readings")

    device_b = connect(DEV_B)
    sent = [_payload() for _ in range(READINGS)]
    for payload in sent:
        device_b.publish(device_topic(DEV_B), payload)

    got = [message.payload for message in _received(ingest, READINGS)]
    assert sorted(got) == sorted(sent), f"the ingest got {len(got)} of {READINGS} readings"
    assert all(code.is_failure for code in codes), f"the device's subscription got {codes}"
    thief.expect_quiet()


# --- The demo's simulator ----------------------------------------------------------------------


def test_simulated_devices_log_in_as_themselves_and_every_reading_reaches_the_ingest(
    connect: Connect, broker: Broker
) -> None:
    """`heimvakt up --demo` hands the simulator the broker URL with the ingest's login; the
    simulator must use only the address, or the broker refuses every simulated reading."""
    ingest = connect(INGEST)
    ingest.subscribe(f"{DEVICES}/+/readings")
    platform_url = BrokerAddress.parse(
        f"mqtt://{INGEST}:{PASSWORDS[INGEST]}@{broker.host}:{broker.port}"
    )
    clock = ManualClock()
    devices = [
        SimulatedDevice(device_id, "pulse_oximeter", (Vital("spo2", "%", 95.0, 1.0),))
        for device_id in SIMULATED
    ]
    expected = len(SIMULATED) * len(list(history_times(now=clock.now(), days=2)))
    simulator = Simulator(
        broker=platform_url,
        device_password=SIMULATED_PASSWORD,
        topic_prefix="heimvakt/v1",
        devices=devices,
        clock=clock,
        interval=3600.0,
        history_days=2,
    )

    simulator.start()
    try:
        got = _received(ingest, expected)
    finally:
        simulator.stop()

    assert len(got) == expected, f"the ingest got {len(got)} of {expected} simulated readings"
    assert {message.topic for message in got} == {device_topic(d) for d in SIMULATED}


# --- The export itself -------------------------------------------------------------------------

_HASH = (
    "$7$101$/DKiFxRchJgDz1D3$Jvob5R20pkQbO93o65obOsrnVCaNfa3MfyWnJNtx7Ss3qtYoAQKfX66eIo0SIpbC"
    "3ZRyNmfqaNgIztExRwy04w=="
)


_INGEST_LINE = f"{INGEST}:{_HASH}\n"


@pytest.mark.parametrize(
    ("passwd", "refusal"),
    [
        pytest.param(f"{_INGEST_LINE}+:{_HASH}", "not a device id", id="wildcard +"),
        pytest.param(f"{_INGEST_LINE}dev#1:{_HASH}", "not a device id", id="wildcard #"),
        pytest.param(f"{_INGEST_LINE}dev/a:{_HASH}", "not a device id", id="topic separator"),
        pytest.param(f"{_INGEST_LINE}heimvakt-ingest-2:{_HASH}", "reserved", id="platform prefix"),
        pytest.param(f"{_INGEST_LINE}{DEV_A}:{_HASH}\n{DEV_A}:{_HASH}", "twice", id="duplicate"),
        pytest.param(f"{_INGEST_LINE}{DEV_A}:$6$c2FsdA==$aGFzaA==", "PBKDF2", id="old hash"),
        pytest.param(f"{_INGEST_LINE}{DEV_A}:plain-password", "PBKDF2", id="no hash"),
        pytest.param(f"{DEV_A}:{_HASH}", "no login for heimvakt-ingest", id="no ingest"),
    ],
)
def test_the_export_refuses_a_login_that_could_break_the_rules(passwd: str, refusal: str) -> None:
    """A device's login becomes a literal topic level and its client id: "+" would publish as
    every device (CVE-2017-7650 in acl_file patterns), and a heimvakt-* id could be the
    platform's."""
    with pytest.raises(PasswordFileError, match=refusal):
        dynamic_security_config(passwd, topic_prefix="heimvakt/v1")


def test_the_export_grants_devices_no_subscription_and_binds_their_client_id() -> None:
    config = dynamic_security_config(f"{_INGEST_LINE}{DEV_A}:{_HASH}\n", topic_prefix="hv/v1")

    clients = {client["username"]: client for client in config["clients"]}
    roles = {role["rolename"]: role for role in config["roles"]}
    assert config["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    assert clients[DEV_A]["clientid"] == DEV_A
    assert "clientid" not in clients[INGEST], "each ingest worker has its own client id"
    [device_role] = clients[DEV_A]["roles"]
    assert {(a["acltype"], a["topic"]) for a in roles[device_role["rolename"]]["acls"]} == {
        ("publishClientSend", f"hv/v1/devices/{DEV_A}/{kind}") for kind in DEVICE_TOPIC_KINDS
    }
    assert config["groups"] == []
