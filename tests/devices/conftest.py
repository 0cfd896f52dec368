"""The care tests' world (staff, patients, care teams, tokens) for the registry's API tests."""

from tests.care.conftest import world, world_client, world_template

__all__ = ["world", "world_client", "world_template"]
