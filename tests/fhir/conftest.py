"""The FHIR facade is tested on the shared-care world (tests/care/world.py)."""

from tests.care.conftest import world, world_client, world_template

__all__ = ["world", "world_client", "world_template"]
