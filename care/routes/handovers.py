"""Hand-over proposals, seen from the receiving unit, and one hand-over for the sender's care
team or the receiving unit."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from care import handover, people
from care.access import (
    Action,
    ForbiddenError,
    Interface,
    NotVisibleError,
    Permission,
    Reason,
    authorize,
    do_access_patient,
    works_at,
)
from care.guard import AccessGuard, Caller, Checked, allowed, guarded_router
from care.schemas import HandoverDecisionIn, HandoverDeclineIn, HandoverOut
from care.staff_work import is_receiver
from core.api import AccessRule, api_context

router = guarded_router(tags=["responsibility"])


@dataclass(frozen=True, slots=True)
class HandoverRecord(Checked):
    """Work on one hand-over: checked for its patient, and logged, in the work's transaction."""

    handover: handover.Handover


class _Handover(AccessGuard):
    """One hand-over, for the sender's care team or (with `receiver`) the receiving unit;
    `receiver=None`: whichever the caller is, the receiving unit deciding (declared as a
    read, which is what the care team does)."""

    def __init__(self, permission: Permission, action: Action, *, receiver: bool | None) -> None:
        self.permission = permission
        self.action = action
        self.receiver = receiver
        self.access_rule = AccessRule(permission, "handover")

    def __call__(
        self, request: Request, principal: Caller, handover_id: UUID
    ) -> Iterator[HandoverRecord]:
        context = api_context(request)
        with context.pool.connection() as conn:
            now = context.clock.now()
            found = handover.get_handover(conn, handover_id=handover_id)
            receiver = self.receiver
            if receiver is None:
                receiver = is_receiver(conn, principal, found, now=now)
            permission = Permission.DECIDE_HANDOVER if receiver else self.permission
            if found is None:
                authorize(conn, principal=principal, permission=permission, now=now)
                raise NotVisibleError
            do_access_patient(
                conn,
                principal=principal,
                permission=permission,
                patient_id=found.patient_id,
                organisation_id=found.to_organisation_id if receiver else None,
                resource="handover",
                action=self.action,
                interface=Interface.API,
                now=now,
            )
            yield HandoverRecord(
                conn=conn,
                principal=principal,
                permission=permission,
                now=now,
                interface=Interface.API,
                handover=found,
            )


PendingHandovers = Annotated[Checked, allowed(Permission.DECIDE_HANDOVER, "patients")]
ReadHandover = Annotated[
    HandoverRecord,
    Depends(_Handover(Permission.READ_PATIENT, Action.READ, receiver=None), scope="function"),
]
DecideHandover = Annotated[
    HandoverRecord,
    Depends(_Handover(Permission.DECIDE_HANDOVER, Action.UPDATE, receiver=True), scope="function"),
]
WithdrawHandover = Annotated[
    HandoverRecord,
    Depends(
        _Handover(Permission.PROPOSE_HANDOVER, Action.UPDATE, receiver=False), scope="function"
    ),
]


@router.get("/handovers")
def pending_handovers(checked: PendingHandovers) -> list[HandoverOut]:
    """Proposals waiting for an organisation you work for."""
    conn = checked.conn
    rows = [
        h
        for organisation in people.employers(conn, staff_id=checked.principal.uuid, now=checked.now)
        for h in handover.pending_handovers_to(conn, organisation_id=organisation)
    ]
    checked.log_patients([h.patient_id for h in rows], resource="handover", reason=Reason.HANDOVER)
    return [HandoverOut.model_validate(h, from_attributes=True) for h in rows]


@router.get("/handovers/{handover_id}")
def get_handover(record: ReadHandover) -> HandoverOut:
    """For the patient's care team and for the receiving unit."""
    return HandoverOut.model_validate(record.handover, from_attributes=True)


@router.post("/handovers/{handover_id}/accept")
def accept_handover(record: DecideHandover, body: HandoverDecisionIn) -> HandoverOut:
    """The receiving unit takes over now: from this moment alerts go to it."""
    decided = handover.do_accept_handover(
        record.conn,
        handover_id=record.handover.id,
        decided_by=record.principal.uuid,
        now=record.now,
        note=body.note,
        sender_becomes_backup=body.sender_becomes_backup,
    )
    return HandoverOut.model_validate(decided, from_attributes=True)


@router.post("/handovers/{handover_id}/decline")
def decline_handover(record: DecideHandover, body: HandoverDeclineIn) -> HandoverOut:
    """The sender stays responsible; the note says why."""
    decided = handover.do_decline_handover(
        record.conn,
        handover_id=record.handover.id,
        decided_by=record.principal.uuid,
        now=record.now,
        note=body.note,
    )
    return HandoverOut.model_validate(decided, from_attributes=True)


@router.post("/handovers/{handover_id}/withdraw")
def withdraw_handover(record: WithdrawHandover) -> HandoverOut:
    """Only staff of the sending unit withdraw its proposal."""
    if not works_at(
        record.conn,
        staff_id=record.principal.uuid,
        organisation_id=record.handover.from_organisation_id,
        now=record.now,
    ):
        raise ForbiddenError
    decided = handover.do_withdraw_handover(
        record.conn,
        handover_id=record.handover.id,
        decided_by=record.principal.uuid,
        now=record.now,
    )
    return HandoverOut.model_validate(decided, from_attributes=True)
