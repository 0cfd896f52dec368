"""Care teams and their members: membership of a team that follows a patient is what opens
the patient's record to staff (care/access.py)."""

from typing import Annotated
from uuid import UUID

from care import people
from care.access import Action, NotVisibleError, Permission, refuse_self_grant
from care.guard import Checked, allowed, guarded_router, team_member
from care.schemas import CareTeamDetail, CareTeamIn, CareTeamOut, MembershipOut, TeamMemberIn
from core.api import Limit, Offset, Page, page
from core.problems import conflict

router = guarded_router(tags=["care teams"])

ReadDirectory = Annotated[Checked, allowed(Permission.READ_DIRECTORY)]
ManageTeams = Annotated[Checked, allowed(Permission.MANAGE_TEAMS)]
ManageMembers = Annotated[Checked, team_member(Permission.MANAGE_TEAMS)]


@router.get("/care-teams")
def list_care_teams(
    checked: ReadDirectory, limit: Limit = 50, offset: Offset = 0
) -> Page[CareTeamOut]:
    rows = people.list_care_teams(checked.conn, limit=limit, offset=offset)
    return page(
        [CareTeamOut.model_validate(t, from_attributes=True) for t in rows],
        limit=limit,
        offset=offset,
    )


@router.post("/care-teams", status_code=201)
def create_care_team(checked: ManageTeams, body: CareTeamIn) -> CareTeamOut:
    """A coordinator who creates a team becomes its first member, for the organisation she
    acts for. This is the one membership one gives oneself, and it opens nobody's data: a
    new team follows no patient, and only someone who already sees a patient can add them."""
    principal = checked.principal
    team = people.do_create_care_team(checked.conn, name=body.name, description=body.description)
    if principal.role != "administrator":
        with checked.membership_change(
            principal.uuid, resource="care-team-member", action=Action.CREATE
        ):
            people.do_add_team_member(
                checked.conn,
                team_id=team.id,
                staff_id=principal.uuid,
                since=checked.now,
                organisation_id=principal.organisation_id,
            )
    return CareTeamOut.model_validate(team, from_attributes=True)


@router.get("/care-teams/{team_id}")
def get_care_team(checked: ReadDirectory, team_id: UUID) -> CareTeamDetail:
    team = people.get_care_team(checked.conn, team_id=team_id)
    if team is None:
        raise NotVisibleError
    members = people.team_members(checked.conn, team_id=team_id, now=checked.now)
    return CareTeamDetail(
        id=team.id,
        name=team.name,
        description=team.description,
        members=[MembershipOut.model_validate(m, from_attributes=True) for m in members],
    )


@router.post("/care-teams/{team_id}/members", status_code=201)
def add_team_member(checked: ManageMembers, team_id: UUID, body: TeamMemberIn) -> MembershipOut:
    """A second person adds a member, for an organisation the member works for now (by
    default their only employer): nobody adds themselves (403; emergency access is the way
    for someone outside the team who needs a record now)."""
    with checked.membership_change(
        body.staff_id, resource="care-team-member", action=Action.CREATE
    ):
        refuse_self_grant(checked.principal, staff_id=body.staff_id)
        created = people.do_add_team_member(
            checked.conn,
            team_id=team_id,
            staff_id=body.staff_id,
            since=checked.now,
            organisation_id=body.organisation_id,
        )
    return MembershipOut.model_validate(created, from_attributes=True)


@router.delete("/care-teams/{team_id}/members/{membership_id}")
def end_team_membership(
    checked: ManageMembers, team_id: UUID, membership_id: UUID
) -> MembershipOut:
    """End a membership now: access to the team's patients through it ends with it."""
    found = people.get_team_membership(checked.conn, membership_id=membership_id)
    if found is None or found.of_id != team_id:
        raise NotVisibleError
    with checked.membership_change(
        found.staff_id, resource="care-team-member", action=Action.DELETE
    ):
        ended = people.do_end_team_membership(
            checked.conn, membership_id=membership_id, now=checked.now
        )
        if not ended:
            raise conflict("the membership has already ended")
    return MembershipOut.model_validate(ended, from_attributes=True)
