"""The shared-care API's wire models. Inputs forbid unknown fields (no mass assignment of an
organisation or a role); outputs say only what the caller's role needs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from care.models import Condition, OrganisationKind
from core.auth import StaffRole
from core.fields import Input
from core.limits import Limits

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Language = Literal["nb", "nn", "en"]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class OpeningHours(Input):
    weekday: int = Field(ge=0, le=6, description="Monday is 0")
    opens: ClockTime
    closes: ClockTime


class OrganisationIn(Input):
    name: Name
    kind: OrganisationKind
    org_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{9}$")] | None = None
    timezone: str = "Europe/Oslo"
    opening_hours: list[OpeningHours] = Field(default_factory=list, max_length=50)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Eksempel kommune, oppfølgingstjenesten",
                    "kind": "municipal_service",
                    "opening_hours": [{"weekday": 0, "opens": "08:00", "closes": "15:30"}],
                }
            ]
        },
    )


class OrganisationOut(BaseModel):
    id: UUID
    name: str
    kind: OrganisationKind
    org_number: str | None
    timezone: str
    opening_hours: list[OpeningHours]


class StaffIn(Input):
    display_name: Name
    role: StaffRole
    hpr_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")] | None = None
    email: Annotated[str, StringConstraints(max_length=254)] | None = None


class StaffOut(BaseModel):
    id: UUID
    display_name: str
    role: StaffRole
    hpr_number: str | None
    email: str | None


class MembershipIn(Input):
    organisation_id: UUID


class TeamMemberIn(Input):
    staff_id: UUID
    organisation_id: UUID | None = Field(
        default=None,
        description="The employer the membership is held for; by default the member's only one."
        " Access through the membership lasts only while this employment does.",
    )


class MembershipOut(BaseModel):
    id: UUID
    staff_id: UUID
    of_id: UUID = Field(description="The organisation or care team")
    of_name: str
    valid_from: datetime
    valid_to: datetime | None


class IdentityIn(Input):
    issuer: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    subject: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class CareTeamIn(Input):
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""


class CareTeamOut(BaseModel):
    id: UUID
    name: str
    description: str


class CareTeamDetail(CareTeamOut):
    members: list[MembershipOut]


class PatientIn(Input):
    display_name: Name
    birth_date: date | None = None
    conditions: list[Condition] = Field(min_length=1, max_length=2)
    preferred_language: Language = "nb"
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    responsible_unit_id: UUID = Field(description="The organisation responsible from now on")
    team_id: UUID = Field(description="The care team that follows the patient (yours)")


class PatientUpdate(Input):
    display_name: Name | None = None
    preferred_language: Language | None = None
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    email: Annotated[str, StringConstraints(max_length=254)] | None = None


class NationalIdIn(Input):
    national_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{11}$")]


class PatientOut(BaseModel):
    id: UUID
    display_name: str
    birth_date: date | None
    conditions: list[str]
    preferred_language: str
    responsible_unit: str | None


class TeamPatientIn(Input):
    team_id: UUID


class ResponsibilityPeriodOut(BaseModel):
    organisation_id: UUID
    organisation_name: str
    role: Literal["responsible", "backup"]
    valid_from: datetime
    valid_to: datetime | None


class BackupUnitIn(Input):
    organisation_id: UUID | None = Field(description="null removes the back-up unit")


class HandoverIn(Input):
    to_organisation_id: UUID
    note: Note


class HandoverDecisionIn(Input):
    note: Note | None = None
    sender_becomes_backup: bool = False


class HandoverDeclineIn(Input):
    note: Note


class HandoverOut(BaseModel):
    id: UUID
    patient_id: UUID
    from_organisation_id: UUID
    from_organisation_name: str
    to_organisation_id: UUID
    to_organisation_name: str
    note: str
    care_plan_version: int | None
    proposed_by: UUID
    proposed_by_name: str
    proposed_at: datetime
    state: Literal["proposed", "accepted", "declined", "withdrawn"]
    decided_by: UUID | None
    decided_by_name: str | None
    decided_at: datetime | None
    decision_note: str | None


class ScheduleOut(BaseModel):
    code: str
    every_hours: int
    grace_hours: int


class ScheduleIn(Input):
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    every_hours: int = Field(ge=1, le=24 * 31)
    grace_hours: int = Field(default=0, ge=0, le=24 * 7)


class LimitValues(BaseModel):
    """`core.limits.Limits` on the wire, without its code: yellow outside [low, high], red
    outside [red_low, red_high]; null means no limit on that side."""

    low: float | None = None
    high: float | None = None
    red_low: float | None = None
    red_high: float | None = None


class ThresholdOut(LimitValues):
    code: str
    reason: str | None = Field(description="Why a clinician overrode the template; null: default")


class ThresholdIn(Input, LimitValues):
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]

    def to_limits(self) -> Limits:
        """The limits as the care plan takes them."""
        return Limits(**self.model_dump())


SpO2Target = tuple[Annotated[int, Field(ge=50, le=100)], Annotated[int, Field(ge=50, le=100)]]
RuleParameters = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64)], float | None], Field(max_length=20)
]


class CarePlanCreate(Input):
    template: Literal["copd", "copd_hypercapnic", "heart_failure"]
    spo2_scale: Literal[1, 2] | None = Field(
        default=None, description="NEWS2 SpO2 scale; null: from spo2_target, else the template's"
    )
    spo2_target: SpO2Target | None = None
    rule_parameters: RuleParameters | None = None


class CarePlanUpdate(Input):
    reason: Note = Field(description="Why: kept in the version history")
    thresholds: list[ThresholdIn] | None = Field(default=None, max_length=50)
    measurements: list[ScheduleIn] | None = Field(default=None, max_length=50)
    self_management: Annotated[str, StringConstraints(max_length=8000)] | None = None
    spo2_scale: Literal[1, 2] | None = None
    spo2_target: SpO2Target | None = Field(
        default=None, description="Prescribed SpO2 target [low, high] %; 88-92 sets scale 2"
    )
    rule_parameters: RuleParameters | None = Field(
        default=None,
        description="Per-patient rule parameters (GET /api/v1/rules lists them); null: default",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason": "Habitual SpO2 is 89-91 % when stable",
                    "thresholds": [{"code": "59408-5", "low": 88, "red_low": 85}],
                }
            ]
        },
    )


class CarePlanOut(BaseModel):
    patient_id: UUID
    template: str
    version: int
    spo2_scale: int
    spo2_target: tuple[int, int] | None = None
    rule_parameters: dict[str, float] | None = None
    self_management: str
    measurements: list[ScheduleOut]
    thresholds: list[ThresholdOut]
    updated_at: datetime
    updated_by: UUID | None


class CarePlanVersionOut(BaseModel):
    version: int
    changed_at: datetime
    changed_by: UUID | None
    reason: str
    old: dict | None
    new: dict


class TemplateOut(BaseModel):
    key: str
    conditions: list[str]
    spo2_scale: int
    measurements: list[ScheduleOut]
    thresholds: list[ThresholdOut]


class ReadingOut(BaseModel):
    device_id: str
    code: str
    measured_at: datetime
    value: float
    unit: str


class AccessLogEntryOut(BaseModel):
    at: datetime
    actor_kind: str
    actor_name: str
    role: str
    hpr_number: str | None
    organisation_name: str | None
    resource: str
    action: str
    interface: str
    reason_code: str
    emergency_reason: str | None = Field(
        description="With reason code `emergency`: why the emergency access was opened"
    )


class AuditEntryOut(AccessLogEntryOut):
    """What an administrator sees: also which patients a request touched."""

    id: int
    patient_ids: list[UUID]


class EmergencyAccessIn(Input):
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ] = Field(description="Why you need the record now; the patient will read it")


class EmergencyAccessOut(BaseModel):
    id: UUID
    patient_id: UUID
    staff_id: UUID
    staff_name: str
    organisation_id: UUID
    organisation_name: str
    reason: str
    valid_from: datetime
    valid_to: datetime = Field(description="The access ends at this moment")


class ErasureIn(Input):
    mode: Literal["erase", "anonymise"] = Field(
        description="erase: delete the patient and all their data; anonymise: keep readings "
        "for statistics without anything that identifies the person"
    )
    reason: Note


class ErasureOut(BaseModel):
    patient_id: UUID
    mode: Literal["erase", "anonymise"]
    readings: int = Field(description="Readings deleted (erase) or kept unlinkable (anonymise)")


class MeOut(BaseModel):
    kind: Literal["staff", "patient"]
    id: UUID
    name: str
    role: str
    hpr_number: str | None
    organisation_name: str | None


ConsentNote = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class RelativeInviteIn(Input):
    """A relative invited as the patient's proxy; a nurse must say how the patient consented."""

    display_name: Name
    email: Annotated[str, StringConstraints(max_length=254)] | None = Field(
        default=None, description="Where the patient's reminders reach the relative, if at all"
    )
    see_own_view: bool = True
    receive_reminders: bool = False
    answer_questionnaires: bool = False
    valid_to: datetime = Field(description="When the consent ends")
    consent_note: ConsentNote | None = Field(
        default=None, description="Required from staff: how the patient gave consent"
    )


class ProxyConsentOut(BaseModel):
    id: UUID
    relative_id: UUID
    relative_name: str
    see_own_view: bool
    receive_reminders: bool
    answer_questionnaires: bool
    valid_from: datetime
    valid_to: datetime
    invited_by_kind: str
    consent_note: str | None
    accepted_at: datetime | None
    withdrawn_at: datetime | None


class InvitationOut(BaseModel):
    consent: ProxyConsentOut
    invitation_code: str = Field(
        description="Give it to the relative; shown only now. They accept it on the log-in page."
    )
