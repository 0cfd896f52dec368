"""Questionnaires under /api/v1: the daily symptom check and the CAT, evaluated by every
rule as soon as they are stored (symptom gating can raise a simultaneous finding)."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import HTTPException
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from alerts.engine import do_evaluate
from care.access import Action, Permission
from care.guard import PatientRecord, guarded_router, patient_record
from core.fields import Input
from core.weeks import COUNT_ANSWERS


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


router = guarded_router(tags=["alerts"])

# The day answered is marked in its week (core.weeks, for the figures) in the same statement.
_STORE = f"""
WITH stored AS (
    INSERT INTO questionnaire_responses (patient_id, kind, answered_at, answers, total,
                                         received_at)
    VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (patient_id, kind, answered_at) DO UPDATE
    SET answers = EXCLUDED.answers, total = EXCLUDED.total
    RETURNING id, patient_id, kind, answered_at
), counted AS ({COUNT_ANSWERS.format(source="stored")})
SELECT id FROM stored
"""

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
    a yes raises a simultaneous weight or SpO2 finding (symptom gating)."""
    now = record.now
    if body.answered_at > now + timedelta(minutes=5):
        raise HTTPException(422, "answered_at lies in the future")
    if isinstance(body, CatIn):
        answers: dict[str, Any] = {f"q{i + 1}": v for i, v in enumerate(body.answers)}
        total: int | None = sum(body.answers)
    else:
        answers = body.model_dump(include={"more_breathless", "more_swelling", "more_cough"})
        total = None
    row = record.conn.execute(
        _STORE, (record.patient_id, body.kind, body.answered_at, Jsonb(answers), total, now)
    ).fetchone()
    do_evaluate(record.conn, moments={record.patient_id: [body.answered_at]}, now=now)
    assert row is not None
    return QuestionnaireOut(id=row[0], kind=body.kind, answered_at=body.answered_at, total=total)
