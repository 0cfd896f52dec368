"""Tenancy and privilege edges: a team is changed only by its members; access lasts only as long
as the employment a care-team membership is held for; nobody gives themselves access, except
through an emergency access that is logged, shown to the patient and reviewed; and every change
of membership is in the access log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg

from care import people
from care.emergency import EMERGENCY_ACCESS_PERIOD
from core.local_accounts import do_create_local_account
from tests.care.conftest import LOCAL_ISSUER, WorldClient
from tests.care.world import World

PROBLEM = "application/problem+json"


def _as(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


def _employment(conn: psycopg.Connection, *, staff: UUID, organisation: UUID) -> UUID:
    row = conn.execute(
        "SELECT id FROM staff_memberships WHERE staff_id = %s AND organisation_id = %s",
        (staff, organisation),
    ).fetchone()
    assert row is not None
    return row[0]


def _log_rows(conn: psycopg.Connection, *, after: int = 0) -> list[tuple]:
    return conn.execute(
        "SELECT actor_name, resource, action, reason_code, patient_ids FROM access_log"
        " WHERE id > %s ORDER BY id",
        (after,),
    ).fetchall()


def _last_log_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM access_log").fetchone()
    assert row is not None
    return row[0]


def _team_a_patients(world: World) -> list[UUID]:
    return sorted(world.patients[key] for key in ("own", "own_handover", "own_no_plan"))


# --- 4: a team is changed only by its members ---------------------------------------------------


def test_a_coordinator_cannot_take_a_patient_off_another_organisations_team(
    world_client: WorldClient, world: World
) -> None:
    own, team_c = world.patients["own"], world.teams["C"]
    with world_client() as (client, conn):
        # The other municipality's team C follows the patient too.
        people.do_add_team_patient(
            conn, team_id=team_c, patient_id=own, since=datetime.now(UTC) - timedelta(days=1)
        )
        refused = client.delete(
            f"/api/v1/patients/{own}/care-teams/{team_c}", headers=_as(world, "coordinator")
        )
        followed = conn.execute(
            "SELECT count(*) FROM care_team_patients WHERE team_id = %s AND patient_id = %s"
            " AND valid_to IS NULL",
            (team_c, own),
        ).fetchone()
        # Her own team is still hers to change.
        allowed = client.delete(
            f"/api/v1/patients/{own}/care-teams/{world.teams['A']}",
            headers=_as(world, "coordinator"),
        )
    assert refused.status_code == 404
    assert refused.headers["content-type"] == PROBLEM
    assert followed == (1,), "team C still follows the patient"
    assert allowed.status_code == 204


# --- 5: access lasts as long as the employment --------------------------------------------------


def test_ending_the_last_employment_ends_patient_access_sessions_and_log_in(
    world_client: WorldClient, world: World
) -> None:
    own, nurse = world.patients["own"], world.staff["hospital_nurse"]
    with world_client() as (client, conn):
        subject = do_create_local_account(conn, username="hnurse", password="et langt passord")
        people.do_link_identity(conn, issuer=LOCAL_ISSUER, subject=str(subject), staff_id=nurse)
        form = {"username": "hnurse", "password": "et langt passord"}
        assert client.post("/auth/token", data=form).status_code == 200
        employment = _employment(conn, staff=nurse, organisation=world.organisations["H"])

        ended = client.delete(
            f"/api/v1/staff/{nurse}/employments/{employment}", headers=_as(world, "administrator")
        )
        assert ended.status_code == 200, ended.text

        read = client.get(f"/api/v1/patients/{own}", headers=_as(world, "hospital_nurse"))
        changed = client.patch(
            f"/api/v1/patients/{own}", json={"phone": "+47 1"}, headers=_as(world, "hospital_nurse")
        )
        log_in = client.post("/auth/token", data=form)
        dashboard_log_in = client.post("/auth/login", data=form, follow_redirects=False)
    assert (read.status_code, changed.status_code) == (401, 401)
    assert log_in.status_code == 401
    assert log_in.headers["content-type"] == PROBLEM
    assert "failed=1" in dashboard_log_in.headers["location"]


def test_access_needs_the_employment_the_membership_is_held_for(
    world_client: WorldClient, world: World
) -> None:
    """The municipal nurse is in team A for the municipality. Working elsewhere too keeps her
    logged in, but once the municipality's employment ends, team A's patients are closed."""
    own, nurse = world.patients["own"], world.staff["municipal_nurse"]
    municipality = world.organisations["M"]
    with world_client() as (client, conn):
        other = client.post(
            f"/api/v1/staff/{nurse}/employments",
            json={"organisation_id": str(world.organisations["X"])},
            headers=_as(world, "administrator"),
        )
        assert other.status_code == 201, other.text
        employment = _employment(conn, staff=nurse, organisation=municipality)

        # An end date still ahead (by the one clock) leaves the access open.
        conn.execute(
            "UPDATE staff_memberships SET valid_to = now() + interval '1 day' WHERE id = %s",
            (employment,),
        )
        before = client.get(f"/api/v1/patients/{own}", headers=_as(world, "municipal_nurse"))
        conn.execute(
            "UPDATE staff_memberships SET valid_to = now() - interval '1 second' WHERE id = %s",
            (employment,),
        )
        read = client.get(f"/api/v1/patients/{own}", headers=_as(world, "municipal_nurse"))
        changed = client.patch(
            f"/api/v1/patients/{own}",
            json={"phone": "+47 1"},
            headers=_as(world, "municipal_nurse"),
        )
        listed = client.get("/api/v1/patients", headers=_as(world, "municipal_nurse"))
        me = client.get("/api/v1/me", headers=_as(world, "municipal_nurse"))
    assert before.status_code == 200
    assert (read.status_code, changed.status_code) == (404, 404)
    assert listed.json()["items"] == []
    assert me.status_code == 200
    assert me.json()["organisation_name"] == "Annen kommune"


def test_a_membership_is_held_for_an_organisation_the_member_works_for(
    world_client: WorldClient, world: World
) -> None:
    newcomer = world.staff["newcomer"]
    with world_client() as (client, _conn):
        elsewhere = client.post(
            f"/api/v1/care-teams/{world.teams['A']}/members",
            json={"staff_id": str(newcomer), "organisation_id": str(world.organisations["X"])},
            headers=_as(world, "coordinator"),
        )
    assert elsewhere.status_code == 409
    assert "does not work for" in elsewhere.json()["detail"]


# --- 6: nobody grants themselves access ---------------------------------------------------------


def test_nobody_adds_themselves_to_a_care_team_or_an_employment(
    world_client: WorldClient, world: World
) -> None:
    own, admin = world.patients["own"], world.staff["administrator"]
    with world_client() as (client, conn):
        before = _last_log_id(conn)
        to_team = client.post(
            f"/api/v1/care-teams/{world.teams['A']}/members",
            json={"staff_id": str(admin)},
            headers=_as(world, "administrator"),
        )
        to_employer = client.post(
            f"/api/v1/staff/{admin}/employments",
            json={"organisation_id": str(world.organisations["M"])},
            headers=_as(world, "administrator"),
        )
        read = client.get(f"/api/v1/patients/{own}", headers=_as(world, "administrator"))
        memberships = conn.execute(
            "SELECT count(*) FROM care_team_members WHERE staff_id = %s", (admin,)
        ).fetchone()
        logged = _log_rows(conn, after=before)
    for refused in (to_team, to_employer):
        assert refused.status_code == 403
        assert refused.headers["content-type"] == PROBLEM
        assert "emergency access" in refused.json()["detail"]
    assert read.status_code == 404
    assert memberships == (0,)
    assert logged == []


def test_every_membership_change_leaves_an_access_log_row(
    world_client: WorldClient, world: World
) -> None:
    newcomer, colleague = world.staff["newcomer"], world.staff["a_colleague"]
    team_a = world.teams["A"]
    with world_client() as (client, conn):
        start = _last_log_id(conn)
        added = client.post(
            f"/api/v1/care-teams/{team_a}/members",
            json={"staff_id": str(newcomer)},
            headers=_as(world, "coordinator"),
        )
        assert added.status_code == 201, added.text
        ended = client.delete(
            f"/api/v1/care-teams/{team_a}/members/{added.json()['id']}",
            headers=_as(world, "coordinator"),
        )
        assert ended.status_code == 200, ended.text
        created = client.post(
            "/api/v1/care-teams", json={"name": "Nytt team"}, headers=_as(world, "coordinator")
        )
        assert created.status_code == 201, created.text
        employed = client.post(
            f"/api/v1/staff/{newcomer}/employments",
            json={"organisation_id": str(world.organisations["M"])},
            headers=_as(world, "administrator"),
        )
        assert employed.status_code == 201, employed.text
        employment = _employment(conn, staff=colleague, organisation=world.organisations["H"])
        left = client.delete(
            f"/api/v1/staff/{colleague}/employments/{employment}",
            headers=_as(world, "administrator"),
        )
        assert left.status_code == 200, left.text
        rows = _log_rows(conn, after=start)
    team_a_patients = _team_a_patients(world)
    assert rows == [
        # The patients whose data the person gained or lost access to.
        ("coordinator", "care-team-member", "create", "administration", team_a_patients),
        ("coordinator", "care-team-member", "delete", "administration", team_a_patients),
        # The creator of a new team is its first member: it follows nobody yet.
        ("coordinator", "care-team-member", "create", "administration", []),
        ("administrator", "employment", "create", "administration", []),
        ("administrator", "employment", "delete", "administration", team_a_patients),
    ]


def test_emergency_access_opens_a_record_for_reading_with_a_reason_the_patient_sees(
    world_client: WorldClient, world: World
) -> None:
    own = world.patients["own"]
    reason = "Innlagt akutt i helgen; trenger pleieplanen"
    nurse = _as(world, "b_nurse")
    with world_client() as (client, conn):
        assert client.get(f"/api/v1/patients/{own}", headers=nurse).status_code == 404
        too_long = client.post(
            f"/api/v1/patients/{own}/emergency-access", json={"reason": "x" * 2001}, headers=nurse
        )
        opened = client.post(
            f"/api/v1/patients/{own}/emergency-access", json={"reason": reason}, headers=nurse
        )
        again = client.post(
            f"/api/v1/patients/{own}/emergency-access", json={"reason": reason}, headers=nurse
        )
        read = client.get(f"/api/v1/patients/{own}/care-plan", headers=nurse)
        changed = client.patch(f"/api/v1/patients/{own}", json={"phone": "+47 1"}, headers=nurse)
        listed = client.get("/api/v1/patients", headers=nurse)
        seen = client.get("/api/v1/me/access-log", headers=_as(world, "patient"))
        # Four hours later the glass is whole again.
        conn.execute(
            "UPDATE emergency_access SET valid_from = valid_from - %(d)s,"
            " valid_to = valid_to - %(d)s",
            {"d": EMERGENCY_ACCESS_PERIOD},
        )
        expired = client.get(f"/api/v1/patients/{own}", headers=nurse)
    assert opened.status_code == 201, opened.text
    grant = opened.json()
    assert (grant["staff_name"], grant["organisation_name"], grant["reason"]) == (
        "b_nurse",
        "Sykehuset",
        reason,
    )
    duration = datetime.fromisoformat(grant["valid_to"]) - datetime.fromisoformat(
        grant["valid_from"]
    )
    assert duration == EMERGENCY_ACCESS_PERIOD
    assert again.status_code == 409
    assert too_long.status_code == 422
    assert read.status_code == 200
    assert changed.status_code == 404, "emergency access is for reading"
    assert own not in {UUID(p["id"]) for p in listed.json()["items"]}, "no worklist through it"
    assert expired.status_code == 404
    entries = [e for e in seen.json()["items"] if e["actor_name"] == "b_nurse"]
    assert [(e["resource"], e["reason_code"], e["emergency_reason"]) for e in entries] == [
        ("care-plan", "emergency", reason),
        ("emergency-access", "emergency", reason),
    ]


def test_a_coordinator_reviews_the_emergency_accesses_of_her_organisation(
    world_client: WorldClient, world: World
) -> None:
    """The municipal nurse breaks the glass on a hospital team's patient; the municipality's
    coordinator sees it listed for follow-up, and the listing is logged."""
    patient = world.patients["other_team"]
    with world_client() as (client, conn):
        opened = client.post(
            f"/api/v1/patients/{patient}/emergency-access",
            json={"reason": "Hjemmebesøk, pasienten dårlig"},
            headers=_as(world, "municipal_nurse"),
        )
        assert opened.status_code == 201, opened.text
        start = _last_log_id(conn)
        review = client.get("/api/v1/emergency-access", headers=_as(world, "coordinator"))
        logged = _log_rows(conn, after=start)
        nurse_review = client.get("/api/v1/emergency-access", headers=_as(world, "b_nurse"))
    assert review.status_code == 200
    [item] = review.json()["items"]
    assert (UUID(item["patient_id"]), item["staff_name"], item["reason"]) == (
        patient,
        "municipal_nurse",
        "Hjemmebesøk, pasienten dårlig",
    )
    assert logged == [("coordinator", "emergency-access", "read", "administration", [patient])]
    assert nurse_review.status_code == 403
