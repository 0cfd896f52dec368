"""Organisations: the units that employ staff and are responsible for patients."""

from typing import Annotated
from uuid import UUID

import psycopg

from care import service
from care.access import NotVisibleError, Permission
from care.guard import Checked, allowed, guarded_router
from care.schemas import OrganisationIn, OrganisationOut
from core.api import Limit, Offset, Page, page
from core.problems import conflict

router = guarded_router(tags=["organisations"])

ReadDirectory = Annotated[Checked, allowed(Permission.READ_DIRECTORY)]
ManageOrganisations = Annotated[Checked, allowed(Permission.MANAGE_ORGANISATIONS)]


@router.get("/organisations")
def list_organisations(
    checked: ReadDirectory, limit: Limit = 50, offset: Offset = 0
) -> Page[OrganisationOut]:
    rows = service.list_organisations(checked.conn, limit=limit, offset=offset)
    return page([_organisation(o) for o in rows], limit=limit, offset=offset)


@router.post("/organisations", status_code=201)
def create_organisation(checked: ManageOrganisations, body: OrganisationIn) -> OrganisationOut:
    try:
        organisation_id = service.do_create_organisation(
            checked.conn,
            name=body.name,
            kind=body.kind,
            org_number=body.org_number,
            timezone=body.timezone,
            opening_hours=[h.model_dump() for h in body.opening_hours],
        )
    except ValueError as error:
        raise conflict(error) from error
    except psycopg.errors.UniqueViolation as error:
        raise conflict("an organisation with this number exists") from error
    created = service.get_organisation(checked.conn, organisation_id=organisation_id)
    assert created is not None
    return _organisation(created)


@router.get("/organisations/{organisation_id}")
def get_organisation(checked: ReadDirectory, organisation_id: UUID) -> OrganisationOut:
    found = service.get_organisation(checked.conn, organisation_id=organisation_id)
    if found is None:
        raise NotVisibleError
    return _organisation(found)


def _organisation(organisation: service.Organisation) -> OrganisationOut:
    return OrganisationOut.model_validate(organisation, from_attributes=True)
