"""Hand-over between units: the sender stays responsible until the receiver accepts, the switch
happens exactly at acceptance, and the whole history is kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest

from care.handover import (
    Handover,
    HandoverStateError,
    backup_unit,
    do_accept_handover,
    do_decline_handover,
    do_propose_handover,
    do_set_backup_unit,
    do_withdraw_handover,
    get_handover,
    handovers_for_patient,
    pending_handovers_to,
    responsibility_history,
    responsible_unit,
)
from care.models import Condition, OrganisationKind
from care.service import do_create_organisation, do_create_patient

START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
PROPOSED = START + timedelta(days=3)
ACCEPTED = PROPOSED + timedelta(hours=5)
NOTE = "Utskrevet etter forverring; daglig SpO2 i to uker"


@dataclass(frozen=True)
class Units:
    hospital: UUID
    municipality: UUID
    gp: UUID
    patient: UUID
    nurse: UUID
    """Works at the hospital; proposes."""
    coordinator: UUID
    """Works in the municipality; decides."""


def _staff(conn: psycopg.Connection, name: str, role: str) -> UUID:
    row = conn.execute(
        "INSERT INTO staff (display_name, role) VALUES (%s, %s) RETURNING id", (name, role)
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def units(conn: psycopg.Connection) -> Units:
    hospital = do_create_organisation(
        conn, name="Sykehuset, lungeavdelingen", kind=OrganisationKind.HOSPITAL_DEPARTMENT
    )
    return Units(
        hospital=hospital,
        municipality=do_create_organisation(
            conn, name="Kommunen, oppfølgingstjenesten", kind=OrganisationKind.MUNICIPAL_SERVICE
        ),
        gp=do_create_organisation(conn, name="Legekontoret", kind=OrganisationKind.GP_OFFICE),
        patient=do_create_patient(
            conn,
            display_name="Test Pasient",
            conditions=[Condition.COPD],
            responsible_unit=hospital,
            since=START,
        ),
        nurse=_staff(conn, "Sykepleier Sara", "nurse"),
        coordinator=_staff(conn, "Koordinator Kari", "coordinator"),
    )


def _propose(
    conn: psycopg.Connection, units: Units, *, to: UUID | None = None, now: datetime = PROPOSED
) -> Handover:
    return do_propose_handover(
        conn,
        patient_id=units.patient,
        to_organisation_id=units.municipality if to is None else to,
        proposed_by=units.nurse,
        note=NOTE,
        now=now,
        care_plan_version=3,
    )


def _accept(
    conn: psycopg.Connection,
    units: Units,
    handover_id: UUID,
    *,
    now: datetime = ACCEPTED,
    note: str | None = None,
    sender_becomes_backup: bool = False,
) -> Handover:
    return do_accept_handover(
        conn,
        handover_id=handover_id,
        decided_by=units.coordinator,
        now=now,
        note=note,
        sender_becomes_backup=sender_becomes_backup,
    )


def _periods(
    conn: psycopg.Connection, units: Units
) -> list[tuple[UUID, str, datetime, datetime | None]]:
    return [
        (p.organisation_id, p.role, p.valid_from, p.valid_to)
        for p in responsibility_history(conn, patient_id=units.patient)
    ]


def test_responsibility_switches_exactly_at_acceptance_and_the_history_shows_both_steps(
    conn: psycopg.Connection, units: Units
) -> None:
    proposal = _propose(conn, units)
    assert (proposal.state, proposal.from_organisation_id) == ("proposed", units.hospital)
    assert (proposal.proposed_by_name, proposal.proposed_at) == ("Sykepleier Sara", PROPOSED)
    assert proposal.decided_at is None

    # The proposal alone changes nothing: the hospital keeps the patient.
    responsible = lambda at: responsible_unit(conn, patient_id=units.patient, at=at)  # noqa: E731
    assert responsible(PROPOSED + timedelta(minutes=1)) == units.hospital
    assert responsible(ACCEPTED - timedelta(microseconds=1)) == units.hospital

    accepted = _accept(conn, units, proposal.id, note="Tatt imot, første besøk i morgen")
    assert responsible(ACCEPTED - timedelta(microseconds=1)) == units.hospital
    assert responsible(ACCEPTED) == units.municipality
    assert responsible(ACCEPTED + timedelta(days=30)) == units.municipality
    assert responsible(START - timedelta(seconds=1)) is None

    [step] = handovers_for_patient(conn, patient_id=units.patient)
    assert step == accepted
    assert step.id == proposal.id
    assert (step.state, step.note, step.care_plan_version) == ("accepted", NOTE, 3)
    assert (step.from_organisation_name, step.to_organisation_name) == (
        "Sykehuset, lungeavdelingen",
        "Kommunen, oppfølgingstjenesten",
    )
    assert (step.proposed_by, step.proposed_by_name, step.proposed_at) == (
        units.nurse,
        "Sykepleier Sara",
        PROPOSED,
    )
    assert (step.decided_by, step.decided_by_name, step.decided_at, step.decision_note) == (
        units.coordinator,
        "Koordinator Kari",
        ACCEPTED,
        "Tatt imot, første besøk i morgen",
    )
    assert get_handover(conn, handover_id=proposal.id) == accepted

    assert _periods(conn, units) == [
        (units.hospital, "responsible", START, ACCEPTED),
        (units.municipality, "responsible", ACCEPTED, None),
    ]
    [before, after] = responsibility_history(conn, patient_id=units.patient)
    assert (before.organisation_name, after.organisation_name) == (
        "Sykehuset, lungeavdelingen",
        "Kommunen, oppfølgingstjenesten",
    )


def test_a_declined_proposal_leaves_the_sender_responsible_and_needs_a_note(
    conn: psycopg.Connection, units: Units
) -> None:
    proposal = _propose(conn, units)
    for blank in ("", "  \n"):
        with pytest.raises(HandoverStateError, match="note"):
            do_decline_handover(
                conn,
                handover_id=proposal.id,
                decided_by=units.coordinator,
                now=ACCEPTED,
                note=blank,
            )
    assert get_handover(conn, handover_id=proposal.id) == proposal

    declined = do_decline_handover(
        conn,
        handover_id=proposal.id,
        decided_by=units.coordinator,
        now=ACCEPTED,
        note="Ingen kapasitet denne uken",
    )
    assert (declined.state, declined.decided_by_name, declined.decided_at) == (
        "declined",
        "Koordinator Kari",
        ACCEPTED,
    )
    assert declined.decision_note == "Ingen kapasitet denne uken"
    later = ACCEPTED + timedelta(days=1)
    assert responsible_unit(conn, patient_id=units.patient, at=later) == units.hospital
    assert _periods(conn, units) == [(units.hospital, "responsible", START, None)]
    assert pending_handovers_to(conn, organisation_id=units.municipality) == []


def test_a_proposal_needs_a_note(conn: psycopg.Connection, units: Units) -> None:
    with pytest.raises(HandoverStateError, match="note"):
        do_propose_handover(
            conn,
            patient_id=units.patient,
            to_organisation_id=units.municipality,
            proposed_by=units.nurse,
            note=" ",
            now=PROPOSED,
        )
    assert handovers_for_patient(conn, patient_id=units.patient) == []


def test_an_accepted_proposal_cannot_be_accepted_again_nor_declined(
    conn: psycopg.Connection, units: Units
) -> None:
    proposal = _propose(conn, units)
    _accept(conn, units, proposal.id)
    later = ACCEPTED + timedelta(hours=1)
    with pytest.raises(HandoverStateError, match="accepted already"):
        _accept(conn, units, proposal.id, now=later)
    with pytest.raises(HandoverStateError, match="accepted already"):
        do_decline_handover(
            conn, handover_id=proposal.id, decided_by=units.coordinator, now=later, note="Nei"
        )
    assert _periods(conn, units) == [
        (units.hospital, "responsible", START, ACCEPTED),
        (units.municipality, "responsible", ACCEPTED, None),
    ]


def test_a_declined_or_withdrawn_proposal_cannot_be_accepted(
    conn: psycopg.Connection, units: Units
) -> None:
    declined = _propose(conn, units)
    do_decline_handover(
        conn, handover_id=declined.id, decided_by=units.coordinator, now=ACCEPTED, note="Nei"
    )
    with pytest.raises(HandoverStateError, match="declined already"):
        _accept(conn, units, declined.id)

    withdrawn = _propose(conn, units, now=ACCEPTED + timedelta(hours=1))
    after = do_withdraw_handover(
        conn, handover_id=withdrawn.id, decided_by=units.nurse, now=ACCEPTED + timedelta(hours=2)
    )
    assert (after.state, after.decided_by_name, after.decision_note) == (
        "withdrawn",
        "Sykepleier Sara",
        None,
    )
    with pytest.raises(HandoverStateError, match="withdrawn already"):
        _accept(conn, units, withdrawn.id, now=ACCEPTED + timedelta(hours=3))

    assert _periods(conn, units) == [(units.hospital, "responsible", START, None)]
    assert [h.state for h in handovers_for_patient(conn, patient_id=units.patient)] == [
        "withdrawn",
        "declined",
    ]


def test_only_one_open_proposal_per_patient(conn: psycopg.Connection, units: Units) -> None:
    first = _propose(conn, units)
    with pytest.raises(HandoverStateError, match="waiting"):
        _propose(conn, units, to=units.gp, now=PROPOSED + timedelta(minutes=5))
    do_withdraw_handover(conn, handover_id=first.id, decided_by=units.nurse, now=ACCEPTED)
    second = _propose(conn, units, to=units.gp, now=ACCEPTED + timedelta(minutes=1))
    assert second.state == "proposed"
    assert [h.id for h in handovers_for_patient(conn, patient_id=units.patient)] == [
        second.id,
        first.id,
    ]


def test_cannot_propose_to_the_unit_in_charge_nor_from_a_unit_that_is_not(
    conn: psycopg.Connection, units: Units
) -> None:
    with pytest.raises(HandoverStateError, match="responsible already"):
        _propose(conn, units, to=units.hospital)
    with pytest.raises(HandoverStateError, match="not responsible"):
        do_propose_handover(
            conn,
            patient_id=units.patient,
            to_organisation_id=units.municipality,
            proposed_by=units.nurse,
            note=NOTE,
            now=PROPOSED,
            from_organisation_id=units.gp,
        )
    with pytest.raises(HandoverStateError, match="no responsible unit"):
        _propose(conn, units, now=START - timedelta(days=1))
    with pytest.raises(HandoverStateError, match="no such unit"):
        _propose(conn, units, to=uuid4())
    assert handovers_for_patient(conn, patient_id=units.patient) == []

    named = do_propose_handover(
        conn,
        patient_id=units.patient,
        to_organisation_id=units.municipality,
        proposed_by=units.nurse,
        note=NOTE,
        now=PROPOSED,
        from_organisation_id=units.hospital,
    )
    assert named.from_organisation_id == units.hospital


def test_acceptance_is_refused_when_the_responsible_unit_changed_since_the_proposal(
    conn: psycopg.Connection, units: Units
) -> None:
    proposal = _propose(conn, units)
    # Changed by hand behind the hand-over's back (an administrator's correction, say).
    changed = PROPOSED + timedelta(hours=1)
    conn.execute(
        "UPDATE patient_responsibility SET valid_to = %s WHERE patient_id = %s",
        (changed, units.patient),
    )
    conn.execute(
        "INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from)"
        " VALUES (%s, %s, 'responsible', %s)",
        (units.patient, units.gp, changed),
    )
    with pytest.raises(HandoverStateError, match="changed since the proposal"):
        _accept(conn, units, proposal.id)
    assert get_handover(conn, handover_id=proposal.id) == proposal
    assert responsible_unit(conn, patient_id=units.patient, at=ACCEPTED) == units.gp


def test_acceptance_is_refused_when_the_sender_left_and_came_back(
    conn: psycopg.Connection, units: Units
) -> None:
    """Same unit, but not the same period: the proposal was written for another situation."""
    proposal = _propose(conn, units)
    away, back = PROPOSED + timedelta(hours=1), PROPOSED + timedelta(hours=2)
    conn.execute(
        "UPDATE patient_responsibility SET valid_to = %s WHERE patient_id = %s",
        (away, units.patient),
    )
    conn.execute(
        "INSERT INTO patient_responsibility (patient_id, organisation_id, role, valid_from,"
        " valid_to) VALUES (%(p)s, %(gp)s, 'responsible', %(away)s, %(back)s),"
        " (%(p)s, %(h)s, 'responsible', %(back)s, NULL)",
        {"p": units.patient, "gp": units.gp, "h": units.hospital, "away": away, "back": back},
    )
    with pytest.raises(HandoverStateError, match="changed since the proposal"):
        _accept(conn, units, proposal.id)
    assert get_handover(conn, handover_id=proposal.id) == proposal


def test_a_proposal_cannot_be_answered_before_it_was_made(
    conn: psycopg.Connection, units: Units
) -> None:
    proposal = _propose(conn, units)
    with pytest.raises(HandoverStateError, match="before it was proposed"):
        _accept(conn, units, proposal.id, now=PROPOSED - timedelta(minutes=1))
    assert get_handover(conn, handover_id=proposal.id) == proposal


def test_an_unknown_hand_over_is_refused(conn: psycopg.Connection, units: Units) -> None:
    assert get_handover(conn, handover_id=uuid4()) is None
    with pytest.raises(HandoverStateError, match="no such hand-over"):
        _accept(conn, units, uuid4())


def test_the_sender_can_stay_on_as_back_up(conn: psycopg.Connection, units: Units) -> None:
    do_set_backup_unit(conn, patient_id=units.patient, organisation_id=units.gp, now=START)
    proposal = _propose(conn, units)
    _accept(conn, units, proposal.id, sender_becomes_backup=True)

    assert backup_unit(conn, patient_id=units.patient, at=ACCEPTED - timedelta(seconds=1)) == (
        units.gp
    )
    assert backup_unit(conn, patient_id=units.patient, at=ACCEPTED) == units.hospital
    assert responsible_unit(conn, patient_id=units.patient, at=ACCEPTED) == units.municipality
    assert _periods(conn, units) == [
        (units.gp, "backup", START, ACCEPTED),
        (units.hospital, "responsible", START, ACCEPTED),
        (units.hospital, "backup", ACCEPTED, None),
        (units.municipality, "responsible", ACCEPTED, None),
    ]


def test_without_back_up_the_sender_lets_go_entirely(
    conn: psycopg.Connection, units: Units
) -> None:
    proposal = _propose(conn, units)
    _accept(conn, units, proposal.id)
    assert backup_unit(conn, patient_id=units.patient, at=ACCEPTED) is None


def test_a_receiver_that_was_back_up_stops_being_its_own_back_up(
    conn: psycopg.Connection, units: Units
) -> None:
    do_set_backup_unit(
        conn, patient_id=units.patient, organisation_id=units.municipality, now=START
    )
    _accept(conn, units, _propose(conn, units).id)
    assert responsible_unit(conn, patient_id=units.patient, at=ACCEPTED) == units.municipality
    assert backup_unit(conn, patient_id=units.patient, at=ACCEPTED) is None
    assert backup_unit(conn, patient_id=units.patient, at=PROPOSED) == units.municipality


def test_setting_changing_and_removing_the_back_up_unit(
    conn: psycopg.Connection, units: Units
) -> None:
    one, two, three = (START + timedelta(days=d) for d in (1, 2, 3))
    do_set_backup_unit(conn, patient_id=units.patient, organisation_id=units.gp, now=one)
    do_set_backup_unit(conn, patient_id=units.patient, organisation_id=units.gp, now=two)
    do_set_backup_unit(conn, patient_id=units.patient, organisation_id=units.municipality, now=two)
    do_set_backup_unit(conn, patient_id=units.patient, organisation_id=None, now=three)
    with pytest.raises(HandoverStateError, match="its own back-up"):
        do_set_backup_unit(
            conn, patient_id=units.patient, organisation_id=units.hospital, now=three
        )
    with pytest.raises(HandoverStateError, match="at or after this moment"):
        do_set_backup_unit(conn, patient_id=units.patient, organisation_id=units.gp, now=two)

    assert [p for p in _periods(conn, units) if p[1] == "backup"] == [
        (units.gp, "backup", one, two),
        (units.municipality, "backup", two, three),
    ]
    backup = lambda at: backup_unit(conn, patient_id=units.patient, at=at)  # noqa: E731
    assert [backup(at) for at in (START, one, two, three)] == [
        None,
        units.gp,
        units.municipality,
        None,
    ]


def test_pending_handovers_to_lists_only_open_proposals_to_that_unit(
    conn: psycopg.Connection, units: Units
) -> None:
    other = do_create_patient(
        conn,
        display_name="Annen Pasient",
        conditions=[Condition.HEART_FAILURE],
        responsible_unit=units.hospital,
        since=START,
    )
    to_gp = do_propose_handover(
        conn,
        patient_id=other,
        to_organisation_id=units.gp,
        proposed_by=units.nurse,
        note="Til fastlegen",
        now=PROPOSED - timedelta(hours=1),
    )
    waiting = _propose(conn, units)
    assert pending_handovers_to(conn, organisation_id=units.municipality) == [waiting]
    assert pending_handovers_to(conn, organisation_id=units.gp) == [to_gp]
    assert pending_handovers_to(conn, organisation_id=units.hospital) == []

    _accept(conn, units, waiting.id)
    assert pending_handovers_to(conn, organisation_id=units.municipality) == []
    assert pending_handovers_to(conn, organisation_id=units.gp) == [to_gp]


Decision = Callable[[psycopg.Connection], Handover]


def _decisions(units: Units, handover_id: UUID) -> dict[str, Decision]:
    return {
        "accept": lambda c: do_accept_handover(
            c, handover_id=handover_id, decided_by=units.coordinator, now=ACCEPTED
        ),
        "decline": lambda c: do_decline_handover(
            c, handover_id=handover_id, decided_by=units.coordinator, now=ACCEPTED, note="Nei"
        ),
        "withdraw": lambda c: do_withdraw_handover(
            c, handover_id=handover_id, decided_by=units.nurse, now=ACCEPTED
        ),
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [("accept", "decline"), ("decline", "accept"), ("accept", "accept"), ("withdraw", "accept")],
)
def test_of_two_decisions_at_once_exactly_one_wins(
    conn: psycopg.Connection, database_url: str, units: Units, first: str, second: str
) -> None:
    """Two connections race; whichever locks the proposal first wins, the other is refused."""
    proposal = _propose(conn, units)
    decisions = _decisions(units, proposal.id)
    barrier = threading.Barrier(2)

    def decide(name: str) -> str:
        with psycopg.connect(database_url, autocommit=True) as own:
            barrier.wait()
            try:
                decisions[name](own)
            except HandoverStateError:
                return "lost"
            return "won"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(decide, (first, second)))
    assert sorted(outcomes) == ["lost", "won"]

    [final] = handovers_for_patient(conn, patient_id=units.patient)
    assert final.state != "proposed"
    expected = units.municipality if final.state == "accepted" else units.hospital
    assert responsible_unit(conn, patient_id=units.patient, at=ACCEPTED) == expected
    assert len([p for p in _periods(conn, units) if p[3] is None]) == 1


def test_a_decision_waits_for_one_in_progress_and_then_loses(
    conn: psycopg.Connection, database_url: str, units: Units
) -> None:
    """Deterministic: an accept holds its transaction open while a decline arrives."""
    proposal = _propose(conn, units)
    decisions = _decisions(units, proposal.id)
    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as second:
        first.execute("SELECT 1")  # opens first's transaction: the accept is a savepoint in it
        decisions["accept"](first)
        pid = second.info.backend_pid
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(decisions["decline"], second)
            deadline = time.monotonic() + 10
            while not conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                (pid,),
            ).fetchone():
                assert time.monotonic() < deadline, "the decline never waited for the lock"
                assert not pending.done(), "the decline did not wait for the accept"
                time.sleep(0.01)
            first.commit()
            with pytest.raises(HandoverStateError, match="accepted already"):
                pending.result(timeout=10)
        second.rollback()
    decided = get_handover(conn, handover_id=proposal.id)
    assert decided is not None
    assert decided.state == "accepted"
    assert responsible_unit(conn, patient_id=units.patient, at=ACCEPTED) == units.municipality
