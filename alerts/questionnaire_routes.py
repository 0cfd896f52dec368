"""Questionnaires under /api/v1: the daily symptom check and the CAT, evaluated by every
rule as soon as they are stored (symptom gating can raise a simultaneous finding)."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import HTTPException
from pydantic import BaseModel, Field

from alerts.answers import do_record_answers
from care.access import Action, Permission
from care.guard import PatientRecord, guarded_router, patient_record
from core.fields import Input


class DailySymptomsIn(Input):
    kind: Literal["daily_symptoms"]
    answered_at: datetime
    more_breathless: bool
    more_swelling: bool
    more_cough: bool


class CatIn(Input):
    kind: Literal["cat"]
    answered_at: datetime
    answers: list[Annotated[int, Field(ge=0, le=5)]] = Field(min_length=8, max_length=8)


class QuestionnaireOut(BaseModel):
    id: int
    kind: str
    answered_at: datetime
    total: int | None


def recorded_answers(body: DailySymptomsIn | CatIn) -> tuple[dict[str, Any], int | None]:
    """The answers as stored (the CAT's items as q1..q8) and the CAT's total; the API and the
    patient's own page record them alike."""
    if isinstance(body, CatIn):
        return {f"q{i + 1}": v for i, v in enumerate(body.answers)}, sum(body.answers)
    return body.model_dump(include={"more_breathless", "more_swelling", "more_cough"}), None


router = guarded_router(tags=["alerts"])

SubmitAnswers = Annotated[
    PatientRecord,
    patient_record(Permission.SUBMIT_QUESTIONNAIRE, resource="questionnaire", action=Action.CREATE),
]


@router.post("/patients/{patient_id}/questionnaires", status_code=201)
def submit_questionnaire(
    record: SubmitAnswers,
    body: Annotated[DailySymptomsIn | CatIn, Field(discriminator="kind")],
) -> QuestionnaireOut:
    """The daily symptom check (yes/no) or the CAT (8 items, 0-5); evaluated at once, and
    a yes raises a simultaneous weight or SpO2 finding (symptom gating). A relative whose
    consent allows it answers on the patient's behalf, and the answers say so."""
    now = record.now
    if body.answered_at > now + timedelta(minutes=5):
        raise HTTPException(422, "answered_at lies in the future")
    answers, total = recorded_answers(body)
    answer_id = do_record_answers(
        record.conn,
        patient_id=record.patient_id,
        kind=body.kind,
        answered_at=body.answered_at,
        answers=answers,
        total=total,
        now=now,
        answered_by_relative=record.principal.uuid if record.principal.kind == "relative" else None,
    )
    return QuestionnaireOut(id=answer_id, kind=body.kind, answered_at=body.answered_at, total=total)
