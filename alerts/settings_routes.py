"""The alert settings API under /api/v1: each unit's escalation policy, one's own
notification channels, and the channel a patient chooses for their reminders. A target
address is checked when it is saved as the dispatcher's channels check it when they send (no
loopback or private hosts unless the app factory allows them: `bind_target_policy`)."""

from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, StringConstraints

from alerts.channels import DeliveryError, PermanentDeliveryError, check_target
from alerts.reminders import do_choose_reminder_channel, reminder_channel
from care.access import Action, NotVisibleError, Permission
from care.guard import (
    Checked,
    PatientRecord,
    allowed,
    guarded_router,
    organisation_member,
    patient_record,
)
from core.fields import Input

Channel = Literal["email", "webhook", "apprise"]


class TargetIn(Input):
    channel: Channel
    address: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class EscalationPolicyIn(Input):
    red_minutes: int = Field(default=15, ge=1, le=1440)
    yellow_minutes: int = Field(default=480, ge=1, le=10080)
    on_call_channel: Channel | None = None
    on_call_address: Annotated[str, StringConstraints(max_length=2000)] | None = None
    out_of_hours_channel: Channel | None = None
    out_of_hours_address: Annotated[str, StringConstraints(max_length=2000)] | None = None
    include_values: bool = Field(
        default=False, description="Put measured values in notifications (off: minimum only)"
    )
    technical_contacts: list[TargetIn] = Field(
        default=[],
        max_length=10,
        description="Who hears of a notification that could not be delivered, on every channel "
        "here except the one that failed",
    )


class EscalationPolicyOut(EscalationPolicyIn):
    organisation_id: UUID


class SubscriptionIn(Input):
    channel: Channel
    address: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    min_severity: Literal["yellow", "red"] = "red"


class SubscriptionOut(SubscriptionIn):
    id: int


class ReminderChannelIn(Input):
    channel: Literal["email", "apprise", "none"] = Field(
        description="E-mail, an Apprise URL (SMS, push), or no reminders"
    )
    address: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = Field(
        default=None, description="The e-mail address or Apprise URL; none for no reminders"
    )


class ReminderChannelOut(BaseModel):
    channel: str
    """email, apprise or none."""
    address: str | None


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Whether notification targets may be loopback or private addresses
    (HEIMVAKT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES), as the dispatcher's channels allow."""

    allow_private_addresses: bool = False

    def check(self, channel: str | None, address: str | None) -> None:
        """Refuse a target the channel would refuse at send time (SSRF), when it is named."""
        if channel is None or address is None:
            return
        try:
            check_target(channel, address, allow_private_addresses=self.allow_private_addresses)
        except (PermanentDeliveryError, DeliveryError) as error:
            raise HTTPException(422, f"the {channel} address is refused: {error}") from None


def bind_target_policy(app: FastAPI, policy: TargetPolicy) -> None:
    app.state.alert_target_policy = policy


def _target_policy(request: Request) -> TargetPolicy:
    policy = request.app.state.alert_target_policy
    assert isinstance(policy, TargetPolicy), "the app factory binds the target policy"
    return policy


router = guarded_router(tags=["alert settings"])

Targets = Annotated[TargetPolicy, Depends(_target_policy)]
ManageEscalation = Annotated[Checked, organisation_member(Permission.MANAGE_ESCALATION)]
OwnNotifications = Annotated[Checked, allowed(Permission.MANAGE_OWN_NOTIFICATIONS, "self")]
ReadReminders = Annotated[
    PatientRecord, patient_record(Permission.READ_PATIENT, resource="reminder_channel")
]
ChooseReminders = Annotated[
    PatientRecord,
    patient_record(Permission.CHOOSE_REMINDERS, resource="reminder_channel", action=Action.UPDATE),
]


def _require_organisation(conn: psycopg.Connection, organisation_id: UUID) -> None:
    if (
        conn.execute("SELECT 1 FROM organisations WHERE id = %s", (organisation_id,)).fetchone()
        is None
    ):
        raise NotVisibleError


@router.get("/organisations/{organisation_id}/escalation-policy")
def get_policy(checked: ManageEscalation, organisation_id: UUID) -> EscalationPolicyOut:
    _require_organisation(checked.conn, organisation_id)
    with checked.conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM escalation_policies WHERE organisation_id = %s", (organisation_id,)
        ).fetchone()
    contacts = [
        TargetIn(channel=channel, address=address)
        for channel, address in checked.conn.execute(
            "SELECT channel, address FROM technical_contacts WHERE organisation_id = %s"
            " ORDER BY channel, address",
            (organisation_id,),
        )
    ]
    if row is None:
        return EscalationPolicyOut(organisation_id=organisation_id, technical_contacts=contacts)
    row.pop("updated_at")
    return EscalationPolicyOut(**row, technical_contacts=contacts)


@router.put("/organisations/{organisation_id}/escalation-policy")
def put_policy(
    checked: ManageEscalation, targets: Targets, organisation_id: UUID, body: EscalationPolicyIn
) -> EscalationPolicyOut:
    """Deadlines per severity, the on-call and out-of-hours routes, and whether messages
    may carry values."""
    _require_organisation(checked.conn, organisation_id)
    targets.check(body.on_call_channel, body.on_call_address)
    targets.check(body.out_of_hours_channel, body.out_of_hours_address)
    for contact in body.technical_contacts:
        targets.check(contact.channel, contact.address)
    values = body.model_dump(exclude={"technical_contacts"})
    checked.conn.execute(
        """
        INSERT INTO escalation_policies (organisation_id, red_minutes, yellow_minutes,
            on_call_channel, on_call_address, out_of_hours_channel,
            out_of_hours_address, include_values, updated_at)
        VALUES (%(org)s, %(red_minutes)s, %(yellow_minutes)s, %(on_call_channel)s,
            %(on_call_address)s, %(out_of_hours_channel)s, %(out_of_hours_address)s,
            %(include_values)s, %(now)s)
        ON CONFLICT (organisation_id) DO UPDATE SET
            red_minutes = EXCLUDED.red_minutes, yellow_minutes = EXCLUDED.yellow_minutes,
            on_call_channel = EXCLUDED.on_call_channel,
            on_call_address = EXCLUDED.on_call_address,
            out_of_hours_channel = EXCLUDED.out_of_hours_channel,
            out_of_hours_address = EXCLUDED.out_of_hours_address,
            include_values = EXCLUDED.include_values, updated_at = EXCLUDED.updated_at
        """,
        {**values, "org": organisation_id, "now": checked.now},
    )
    checked.conn.execute(
        "DELETE FROM technical_contacts WHERE organisation_id = %s", (organisation_id,)
    )
    contacts = {(c.channel, c.address) for c in body.technical_contacts}
    with checked.conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO technical_contacts (organisation_id, channel, address)"
            " VALUES (%s, %s, %s)",
            [(organisation_id, channel, address) for channel, address in sorted(contacts)],
        )
    return EscalationPolicyOut(
        organisation_id=organisation_id, technical_contacts=body.technical_contacts, **values
    )


@router.get("/me/notification-subscriptions")
def my_subscriptions(checked: OwnNotifications) -> list[SubscriptionOut]:
    with checked.conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, channel, address, min_severity FROM notification_subscriptions"
            " WHERE staff_id = %s ORDER BY id",
            (checked.principal.uuid,),
        ).fetchall()
    return [SubscriptionOut(**row) for row in rows]


@router.post("/me/notification-subscriptions", status_code=201)
def subscribe(checked: OwnNotifications, targets: Targets, body: SubscriptionIn) -> SubscriptionOut:
    """Be told on this channel about alerts of at least this severity for your units."""
    targets.check(body.channel, body.address)
    row = checked.conn.execute(
        "INSERT INTO notification_subscriptions (staff_id, channel, address,"
        " min_severity) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (staff_id, channel, address)"
        " DO UPDATE SET min_severity = EXCLUDED.min_severity RETURNING id",
        (checked.principal.uuid, body.channel, body.address, body.min_severity),
    ).fetchone()
    assert row is not None
    return SubscriptionOut(id=row[0], **body.model_dump())


@router.delete("/me/notification-subscriptions/{subscription_id}", status_code=204)
def unsubscribe(checked: OwnNotifications, subscription_id: int) -> Response:
    deleted = checked.conn.execute(
        "DELETE FROM notification_subscriptions WHERE id = %s AND staff_id = %s",
        (subscription_id, checked.principal.uuid),
    ).rowcount
    if not deleted:
        raise NotVisibleError
    return Response(status_code=204)


@router.get("/patients/{patient_id}/reminder-channel")
def get_reminder_channel(record: ReadReminders) -> ReminderChannelOut:
    """Where the patient's reminders of a missing measurement go ("none": nowhere)."""
    chosen = reminder_channel(record.conn, patient_id=record.patient_id)
    if chosen is None:
        return ReminderChannelOut(channel="none", address=None)
    return ReminderChannelOut(channel=chosen[0], address=chosen[1])


@router.put("/patients/{patient_id}/reminder-channel")
def put_reminder_channel(
    record: ChooseReminders, targets: Targets, body: ReminderChannelIn
) -> ReminderChannelOut:
    """The patient chooses how to be reminded of a measurement that has not come: by e-mail,
    by an Apprise URL (SMS, push), or not at all (then a missing measurement goes straight to
    the nurse, at the plan's due time)."""
    if body.channel == "none":
        do_choose_reminder_channel(
            record.conn, patient_id=record.patient_id, channel=None, address=None, now=record.now
        )
        return ReminderChannelOut(channel="none", address=None)
    if body.address is None:
        raise HTTPException(422, f"a {body.channel} reminder needs an address")
    targets.check(body.channel, body.address)
    do_choose_reminder_channel(
        record.conn,
        patient_id=record.patient_id,
        channel=body.channel,
        address=body.address,
        now=record.now,
    )
    return ReminderChannelOut(channel=body.channel, address=body.address)
