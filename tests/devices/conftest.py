"""What the device tests share: the care tests' world (staff, patients, care teams, tokens)
for the registry's API, and a Mosquitto of the test's own."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.care.conftest import world, world_client, world_template
from tests.processes import MOSQUITTO, Mosquitto

__all__ = ["broker", "world", "world_client", "world_template"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of the test's own (anonymous, persistent), stopped at the end."""
    if MOSQUITTO is None:
        pytest.skip("needs mosquitto (apt-get install mosquitto)")
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()
