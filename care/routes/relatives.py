"""A patient's relatives as proxies (care/proxies.py): invite one, list the consents, withdraw
one."""

from typing import Annotated
from uuid import UUID

from fastapi import HTTPException

from care.access import Action, Permission
from care.guard import PatientRecord, guarded_router, patient_record
from care.proxies import (
    ProxyScope,
    consents_of_patient,
    do_invite_relative,
    do_withdraw_consent,
)
from care.schemas import InvitationOut, ProxyConsentOut, RelativeInviteIn

router = guarded_router(tags=["relatives"])

ReadConsents = Annotated[
    PatientRecord, patient_record(Permission.READ_PATIENT, resource="relatives")
]
InviteRelative = Annotated[
    PatientRecord,
    patient_record(Permission.MANAGE_PROXIES, resource="relatives", action=Action.CREATE),
]
WithdrawConsent = Annotated[
    PatientRecord,
    patient_record(Permission.MANAGE_PROXIES, resource="relatives", action=Action.UPDATE),
]


@router.get("/patients/{patient_id}/relatives")
def list_relatives(record: ReadConsents) -> list[ProxyConsentOut]:
    """Every consent the patient gave a relative, ended and withdrawn ones too."""
    return [
        ProxyConsentOut.model_validate(c, from_attributes=True)
        for c in consents_of_patient(record.conn, patient_id=record.patient_id)
    ]


@router.post("/patients/{patient_id}/relatives", status_code=201)
def invite_relative(record: InviteRelative, body: RelativeInviteIn) -> InvitationOut:
    """Invite a relative as the patient's proxy, with a scope and an end date. The patient
    invites; a nurse invites only with a note of how the patient consented. The answer holds
    the one-time invitation code for the relative."""
    try:
        invitation = do_invite_relative(
            record.conn,
            patient_id=record.patient_id,
            display_name=body.display_name,
            email=body.email,
            scope=ProxyScope(
                see_own_view=body.see_own_view,
                receive_reminders=body.receive_reminders,
                answer_questionnaires=body.answer_questionnaires,
            ),
            valid_to=body.valid_to,
            inviter=record.principal,
            consent_note=body.consent_note,
            now=record.now,
        )
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    return InvitationOut(
        consent=ProxyConsentOut.model_validate(invitation.consent, from_attributes=True),
        invitation_code=invitation.code,
    )


@router.post("/patients/{patient_id}/relatives/{consent_id}/withdraw")
def withdraw_consent(record: WithdrawConsent, consent_id: UUID) -> ProxyConsentOut:
    """Withdraw a consent now: the relative is refused from their very next request."""
    withdrawn = do_withdraw_consent(
        record.conn,
        patient_id=record.patient_id,
        consent_id=consent_id,
        withdrawn_by=record.principal,
        now=record.now,
    )
    if withdrawn is None:
        raise HTTPException(404, "no such consent, or it is withdrawn already")
    return ProxyConsentOut.model_validate(withdrawn, from_attributes=True)
