"""The shared-care REST API under /api/v1: organisations, staff, care teams, patients, care
plans, responsibility and hand-over, the access log and the patient's rights, one module per
sub-domain, each with its own router.

Every route names its access check as a dependency from care/guard.py, which also declares
the route's permission in the OpenAPI document (``x-heimvakt-access``), from which
tests/care/test_authorization_matrix.py builds its cases. Routes on a patient's data log the
access in the same transaction as the work, so a request whose log row cannot be written
fails and returns nothing. Other components import care/guard.py and core/api.py, never
these modules (the import contract in pyproject.toml).
"""

from fastapi import APIRouter

from care.routes import (
    care_plans,
    emergency_access,
    handovers,
    me,
    organisations,
    patient_rights,
    patients,
    relatives,
    responsibility,
    staff,
    teams,
)

router = APIRouter()
for module in (
    me,
    organisations,
    staff,
    teams,
    patients,
    care_plans,
    responsibility,
    handovers,
    patient_rights,
    emergency_access,
    relatives,
):
    router.include_router(module.router)
