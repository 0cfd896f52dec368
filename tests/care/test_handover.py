"""Hand-over between units: the sender stays responsible until the receiver accepts, and the
whole history is kept."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from care.handover import (
    HandoverStateError,
    backup_unit,
    do_accept_handover,
    do_decline_handover,
    do_propose_handover,
    handovers_for_patient,
    pending_handovers_to,
    responsibility_history,
    responsible_unit,
)
from care.models import Condition, OrganisationKind
from care.people import do_create_staff
from care.service import do_create_organisation, do_create_patient
from core.auth import StaffRole

START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
PROPOSED = START + timedelta(days=3)
ACCEPTED = PROPOSED + timedelta(hours=5)


@pytest.fixture
def units(conn: psycopg.Connection) -> dict[str, UUID]:
    hospital = do_create_organisation(
        conn, name="Sykehuset, lungeavdelingen", kind=OrganisationKind.HOSPITAL_DEPARTMENT
    )
    municipality = do_create_organisation(
        conn, name="Kommunen, oppfølgingstjenesten", kind=OrganisationKind.MUNICIPAL_SERVICE
    )
    patient = do_create_patient(
        conn,
        display_name="Test Pasient",
        conditions=[Condition.COPD],
        responsible_unit=hospital,
        since=START,
    )
    return {
        "hospital": hospital,
        "municipality": municipality,
        "patient": patient,
        "sender": do_create_staff(conn, display_name="Sykepleier", role=StaffRole.NURSE).id,
        "receiver": do_create_staff(
            conn, display_name="Koordinator", role=StaffRole.COORDINATOR
        ).id,
    }


def _propose(conn: psycopg.Connection, units: dict[str, UUID]) -> UUID:
    return do_propose_handover(
        conn,
        patient_id=units["patient"],
        to_organisation_id=units["municipality"],
        proposed_by=units["sender"],
        note="Utskrevet etter forverring; daglig SpO2 i to uker",
        now=PROPOSED,
        care_plan_version=3,
    ).id


def test_responsibility_switches_at_acceptance_and_the_history_shows_both_steps(
    conn: psycopg.Connection, units: dict[str, UUID]
) -> None:
    handover_id = _propose(conn, units)
    patient = units["patient"]
    assert (
        responsible_unit(conn, patient_id=patient, at=PROPOSED + timedelta(minutes=1))
        == (units["hospital"])
    )
    do_accept_handover(
        conn, handover_id=handover_id, decided_by=units["receiver"], now=ACCEPTED, note="Tatt imot"
    )
    assert (
        responsible_unit(conn, patient_id=patient, at=ACCEPTED - timedelta(seconds=1))
        == (units["hospital"])
    )
    assert responsible_unit(conn, patient_id=patient, at=ACCEPTED) == units["municipality"]
    [step] = handovers_for_patient(conn, patient_id=patient)
    assert (step.state, step.proposed_by_name, step.proposed_at) == (
        "accepted",
        "Sykepleier",
        PROPOSED,
    )
    assert (step.decided_by_name, step.decided_at, step.care_plan_version) == (
        "Koordinator",
        ACCEPTED,
        3,
    )
    periods = responsibility_history(conn, patient_id=patient)
    assert [(p.organisation_id, p.valid_from, p.valid_to) for p in periods] == [
        (units["hospital"], START, ACCEPTED),
        (units["municipality"], ACCEPTED, None),
    ]


def test_a_declined_proposal_leaves_the_sender_responsible_and_needs_a_note(
    conn: psycopg.Connection, units: dict[str, UUID]
) -> None:
    handover_id = _propose(conn, units)
    with pytest.raises(HandoverStateError, match="note"):
        do_decline_handover(
            conn, handover_id=handover_id, decided_by=units["receiver"], now=ACCEPTED, note=" "
        )
    declined = do_decline_handover(
        conn,
        handover_id=handover_id,
        decided_by=units["receiver"],
        now=ACCEPTED,
        note="Ingen kapasitet denne uken",
    )
    assert declined.state == "declined"
    assert (
        responsible_unit(conn, patient_id=units["patient"], at=ACCEPTED + timedelta(days=1))
        == (units["hospital"])
    )
    with pytest.raises(HandoverStateError, match="declined"):
        do_accept_handover(
            conn, handover_id=handover_id, decided_by=units["receiver"], now=ACCEPTED
        )


def test_one_open_proposal_at_a_time_and_never_to_the_unit_in_charge(
    conn: psycopg.Connection, units: dict[str, UUID]
) -> None:
    _propose(conn, units)
    assert [
        h.patient_id for h in pending_handovers_to(conn, organisation_id=units["municipality"])
    ] == [units["patient"]]
    with pytest.raises(HandoverStateError, match="waiting"):
        _propose(conn, units)
    with pytest.raises(HandoverStateError, match="responsible already"):
        do_propose_handover(
            conn,
            patient_id=units["patient"],
            to_organisation_id=units["hospital"],
            proposed_by=units["sender"],
            note="x",
            now=PROPOSED,
        )


def test_an_accepted_proposal_cannot_be_accepted_again(
    conn: psycopg.Connection, units: dict[str, UUID]
) -> None:
    handover_id = _propose(conn, units)
    do_accept_handover(conn, handover_id=handover_id, decided_by=units["receiver"], now=ACCEPTED)
    with pytest.raises(HandoverStateError, match="accepted already"):
        do_accept_handover(
            conn, handover_id=handover_id, decided_by=units["receiver"], now=ACCEPTED
        )


def test_the_sender_can_stay_on_as_back_up(
    conn: psycopg.Connection, units: dict[str, UUID]
) -> None:
    handover_id = _propose(conn, units)
    do_accept_handover(
        conn,
        handover_id=handover_id,
        decided_by=units["receiver"],
        now=ACCEPTED,
        sender_becomes_backup=True,
    )
    assert backup_unit(conn, patient_id=units["patient"], at=ACCEPTED) == units["hospital"]


def test_of_an_accept_and_a_decline_at_once_exactly_one_wins(
    conn: psycopg.Connection, database_url: str, units: dict[str, UUID]
) -> None:
    handover_id = _propose(conn, units)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def decide(accept: bool) -> None:
        with psycopg.connect(database_url, autocommit=True) as own:
            barrier.wait()
            try:
                if accept:
                    do_accept_handover(
                        own, handover_id=handover_id, decided_by=units["receiver"], now=ACCEPTED
                    )
                else:
                    do_decline_handover(
                        own,
                        handover_id=handover_id,
                        decided_by=units["receiver"],
                        now=ACCEPTED,
                        note="Nei",
                    )
                outcomes.append("won")
            except HandoverStateError:
                outcomes.append("lost")

    threads = [threading.Thread(target=decide, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost", "won"]
    [final] = handovers_for_patient(conn, patient_id=units["patient"])
    holder = responsible_unit(conn, patient_id=units["patient"], at=ACCEPTED)
    expected = units["municipality"] if final.state == "accepted" else units["hospital"]
    assert holder == expected
