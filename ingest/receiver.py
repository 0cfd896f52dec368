"""The ingest's own MQTT subscriber: one network thread, acknowledgement left to the caller.

paho-mqtt handles each packet in pure Python with several calls per packet, and acknowledges
one message per call; at the ingest's rates that was most of its CPU time, and a slow writer
blocked paho's network thread until the broker dropped the connection for want of a ping. This
subscriber reads the socket in large chunks, parses every whole packet of a wake-up at once,
hands them over in one call, and sends a batch's PUBACKs in one write. Its network thread never
waits for anyone: it pings on its own schedule, and back-pressure comes from the broker
(Receive Maximum bounds unacknowledged QoS 1 messages) or, for QoS 0, from not reading while
the caller says it holds too much.

Every connection gets a new session number. A packet id names a message only on the connection
that delivered it, so acknowledgements for an earlier connection are dropped, never sent.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence

from core.mqtt import SESSION_EXPIRY_SECONDS, BrokerAddress
from ingest import metrics, mqtt_packets
from ingest.mqtt_packets import ConnAck, Disconnect, PingResp, ProtocolError, Publish, SubAck

log = logging.getLogger(__name__)

OnMessages = Callable[[int, list[Publish]], None]
"""Called on the network thread with the session number and the messages of one wake-up."""

_READ_CHUNK = 256 * 1024
_PAUSED_POLL_SECONDS = 0.05
_CONNECT_TIMEOUT_SECONDS = 10.0
_DISCONNECT_WAIT_SECONDS = 2.0
_BACKOFF_FIRST_SECONDS = 1.0
_BACKOFF_MAX_SECONDS = 30.0
_SUBSCRIBE_PACKET_ID = 1


class _ConnectionLost(Exception):
    """This connection cannot go on; the network thread opens another after a pause."""


class _Connection:
    """One broker connection's state; only the network thread touches it."""

    def __init__(self, sock: socket.socket, session: int, *, mqtt5: bool) -> None:
        self.sock = sock
        self.session = session
        self.parser = mqtt_packets.Parser(mqtt5=mqtt5)
        self.connected = False
        """CONNACK received; SUBACK may still be due."""
        self.subscribed = False
        """SUBACK received: from now on the caller may pause reading, never before."""
        self.keepalive = 0.0
        self.deadline = time.monotonic() + _CONNECT_TIMEOUT_SECONDS
        """When CONNACK must have come, and once connected, when the next PINGREQ is due."""
        self.unanswered_since: float | None = None


class Receiver:
    """Subscribes with a persistent session and delivers messages until stopped."""

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        client_id: str,
        subscriptions: Sequence[tuple[str, int]],
        on_messages: OnMessages,
        may_read: Callable[[], bool] = lambda: True,
        receive_maximum: int = 1000,
        keepalive: int = 30,
    ) -> None:
        self._broker = broker
        self._client_id = client_id
        self._subscriptions = list(subscriptions)
        self._on_messages = on_messages
        self._may_read = may_read
        self._receive_maximum = receive_maximum
        self._keepalive = keepalive
        self._session = 0
        self._acks: list[tuple[int, Sequence[int]]] = []
        self._acks_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_writer.setblocking(False)
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """True once the broker has confirmed every subscription on the current connection."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def acknowledge(self, session: int, packet_ids: Sequence[int]) -> None:
        """PUBACK these QoS 1 messages, all in one write, if their connection is still the one.

        Safe from any thread: the network thread does the sending, so TLS and the parser
        never see two threads at once.
        """
        if not packet_ids:
            return
        with self._acks_lock:
            self._acks.append((session, packet_ids))
            first = len(self._acks) == 1
        if first:
            self._wake()

    def stop(self, timeout: float = 10.0) -> None:
        """Send the acknowledgements already given, then DISCONNECT; the session stays."""
        self._stopping.set()
        self._wake()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        self._wake_reader.close()
        self._wake_writer.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a wake-up is already pending, or we are stopped
            self._wake_writer.send(b"\0")

    def _run(self) -> None:
        delay = _BACKOFF_FIRST_SECONDS
        while not self._stopping.is_set():
            self._session += 1
            error: BaseException | None = None
            try:
                self._serve(self._session)
            except (OSError, ProtocolError, _ConnectionLost) as lost:
                error = lost
            except Exception as bug:  # a bug must not end the ingest's only network thread
                log.exception("the MQTT receiver failed")
                error = bug
            subscribed = self._ready.is_set()
            self._ready.clear()
            metrics.CONNECTED.set(0)
            if self._stopping.is_set():
                return
            if subscribed:
                metrics.RECONNECTS.inc()
            delay = _BACKOFF_FIRST_SECONDS if subscribed else min(delay * 2, _BACKOFF_MAX_SECONDS)
            log.warning("lost the broker (%s); reconnecting in %.0f s", error, delay)
            self._stopping.wait(delay)

    def _open(self) -> socket.socket:
        broker = self._broker
        sock = socket.create_connection((broker.host, broker.port), _CONNECT_TIMEOUT_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if broker.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=broker.host)
        return sock

    def _serve(self, session: int) -> None:
        """One connection, from CONNECT until it fails or the receiver is stopped."""
        with self._open() as sock:
            connection = _Connection(sock, session, mqtt5=self._broker.mqtt5)
            sock.sendall(
                mqtt_packets.connect(
                    client_id=self._client_id,
                    mqtt5=self._broker.mqtt5,
                    keepalive=self._keepalive,
                    persistent=True,
                    session_expiry=SESSION_EXPIRY_SECONDS,
                    receive_maximum=self._receive_maximum,
                    username=self._broker.username,
                    password=self._broker.password,
                )
            )
            while True:
                self._send_acks(connection)
                if self._stopping.is_set():
                    self._disconnect(sock)
                    return
                reading = self._keep_alive(connection)
                wait = max(0.0, connection.deadline - time.monotonic())
                if reading:
                    ready, _, _ = select.select([sock, self._wake_reader], [], [], wait)
                else:
                    wait = min(wait, _PAUSED_POLL_SECONDS)
                    ready, _, _ = select.select([self._wake_reader], [], [], wait)
                if self._wake_reader in ready:
                    self._wake_reader.recv(4096)
                if sock in ready:
                    self._read(connection)

    @staticmethod
    def _disconnect(sock: socket.socket) -> None:
        """DISCONNECT, then wait for the broker to close: closing a socket with unread bytes
        sends a reset, which can make the broker discard acknowledgements it has not read yet.
        """
        sock.sendall(mqtt_packets.DISCONNECT)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(_DISCONNECT_WAIT_SECONDS)
        with contextlib.suppress(OSError):
            while sock.recv(_READ_CHUNK):
                pass

    def _keep_alive(self, connection: _Connection) -> bool:
        """Ping when due and notice a silent broker; whether to read the socket now."""
        now = time.monotonic()
        if now >= connection.deadline:
            if not connection.connected:
                raise _ConnectionLost("no CONNACK in time")
            connection.sock.sendall(mqtt_packets.PINGREQ)
            connection.deadline = now + connection.keepalive / 2
            connection.unanswered_since = connection.unanswered_since or now
        reading = not connection.subscribed or self._may_read()
        if not reading:
            connection.unanswered_since = None  # a PINGRESP may wait unread behind messages
        elif (
            connection.unanswered_since is not None
            and now - connection.unanswered_since > connection.keepalive
        ):
            raise _ConnectionLost(f"nothing from the broker for {connection.keepalive:.0f} s")
        return reading

    def _read(self, connection: _Connection) -> None:
        """Handle every whole packet that has arrived, and hand the messages over at once."""
        started = time.thread_time()
        sock = connection.sock
        chunks = [sock.recv(_READ_CHUNK)]
        while isinstance(sock, ssl.SSLSocket) and sock.pending():
            chunks.append(sock.recv(_READ_CHUNK))
        data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
        if not data:
            raise _ConnectionLost("the broker closed the connection")
        connection.unanswered_since = None
        publishes: list[Publish] = []
        for packet in connection.parser.feed(data):
            if type(packet) is Publish and connection.connected:
                publishes.append(packet)
            elif type(packet) is ConnAck and not connection.connected:
                self._connected(connection, packet)
            elif type(packet) is SubAck and connection.connected and not connection.subscribed:
                self._subscribed(connection, packet)
            elif type(packet) is Disconnect:
                raise _ConnectionLost(f"the broker disconnected (reason {packet.reason:#x})")
            elif type(packet) is not PingResp:
                state = "connected" if connection.connected else "before CONNACK"
                raise ProtocolError(f"unexpected {type(packet).__name__} {state}")
        metrics.add_stage_cpu("receive", time.thread_time() - started)
        if publishes:
            self._on_messages(connection.session, publishes)

    def _connected(self, connection: _Connection, connack: ConnAck) -> None:
        """Subscribe once the broker accepts us; the keepalive it imposes, if any, wins."""
        if connack.reason:
            raise _ConnectionLost(f"the broker refused the connection (code {connack.reason:#x})")
        log.info("connected to the broker (session present: %s)", connack.session_present)
        connection.sock.sendall(
            mqtt_packets.subscribe(
                _SUBSCRIBE_PACKET_ID, self._subscriptions, mqtt5=self._broker.mqtt5
            )
        )
        connection.connected = True
        connection.keepalive = float(connack.server_keep_alive or self._keepalive)
        connection.deadline = time.monotonic() + connection.keepalive / 2

    def _subscribed(self, connection: _Connection, suback: SubAck) -> None:
        """Ready only once the broker has confirmed the subscriptions, not at mere connection."""
        if suback.packet_id != _SUBSCRIBE_PACKET_ID:
            raise ProtocolError(f"SUBACK for packet id {suback.packet_id}, which we never sent")
        refused = [f"{code:#x}" for code in suback.reasons if code >= 0x80]
        if refused or len(suback.reasons) != len(self._subscriptions):
            raise _ConnectionLost(
                f"the broker refused subscriptions: {refused or suback.reasons!r}"
            )
        connection.subscribed = True
        self._ready.set()
        metrics.CONNECTED.set(1)

    def _send_acks(self, connection: _Connection) -> None:
        if not self._acks:
            return
        started = time.thread_time()
        with self._acks_lock:
            acks, self._acks = self._acks, []
        session = connection.session
        packet_ids = [packet_id for s, ids in acks if s == session for packet_id in ids]
        if packet_ids:
            connection.sock.sendall(mqtt_packets.pubacks(packet_ids))
        metrics.add_stage_cpu("receive", time.thread_time() - started)
