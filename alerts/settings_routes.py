"""The alert settings API under /api/v1: each unit's escalation policy and one's own
notification channels. A target address is checked when it is saved as the dispatcher's
channels check it when they send (no loopback or private hosts unless allowed)."""

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import HTTPException, Response
from psycopg.rows import dict_row
from pydantic import Field, StringConstraints

from alerts.channels import DeliveryError, PermanentDeliveryError, check_target
from care.access import NotVisibleError, Permission
from care.guard import Guard
from core.api import access
from core.fields import Input

Channel = Literal["email", "webhook", "apprise"]


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


class EscalationPolicyOut(EscalationPolicyIn):
    organisation_id: UUID


class SubscriptionIn(Input):
    channel: Channel
    address: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    min_severity: Literal["yellow", "red"] = "red"


class SubscriptionOut(SubscriptionIn):
    id: int


def settings_routes(api: Guard, Caller: Any, *, allow_private_targets: bool) -> None:
    """Escalation policies and one's own notification channels."""

    def check(channel: str | None, address: str | None) -> None:
        """Refuse a target the channel would refuse at send time (SSRF), when it is named."""
        if channel is None or address is None:
            return
        try:
            check_target(channel, address, allow_private_addresses=allow_private_targets)
        except (PermanentDeliveryError, DeliveryError) as error:
            raise HTTPException(422, f"the {channel} address is refused: {error}") from None

    @api.router.get(
        "/organisations/{organisation_id}/escalation-policy",
        tags=["alert settings"],
        response_model=EscalationPolicyOut,
        openapi_extra=access(Permission.MANAGE_ESCALATION, "organisation"),
    )
    def get_policy(principal: Caller, organisation_id: UUID) -> Any:
        with api.allowed(
            principal, Permission.MANAGE_ESCALATION, organisation_id=organisation_id
        ) as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM organisations WHERE id = %s", (organisation_id,)
                ).fetchone()
                is None
            ):
                raise NotVisibleError
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(
                    "SELECT * FROM escalation_policies WHERE organisation_id = %s",
                    (organisation_id,),
                ).fetchone()
        if row is None:
            return EscalationPolicyOut(organisation_id=organisation_id)
        row.pop("updated_at")
        return EscalationPolicyOut(**row)

    @api.router.put(
        "/organisations/{organisation_id}/escalation-policy",
        tags=["alert settings"],
        response_model=EscalationPolicyOut,
        openapi_extra=access(Permission.MANAGE_ESCALATION, "organisation"),
    )
    def put_policy(principal: Caller, organisation_id: UUID, body: EscalationPolicyIn) -> Any:
        """Deadlines per severity, the on-call and out-of-hours routes, and whether messages
        may carry values."""
        with api.allowed(
            principal, Permission.MANAGE_ESCALATION, organisation_id=organisation_id
        ) as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM organisations WHERE id = %s", (organisation_id,)
                ).fetchone()
                is None
            ):
                raise NotVisibleError
            check(body.on_call_channel, body.on_call_address)
            check(body.out_of_hours_channel, body.out_of_hours_address)
            values = body.model_dump()
            conn.execute(
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
                {**values, "org": organisation_id, "now": api.clock.now()},
            )
        return EscalationPolicyOut(organisation_id=organisation_id, **values)

    @api.router.get(
        "/me/notification-subscriptions",
        tags=["alert settings"],
        response_model=list[SubscriptionOut],
        openapi_extra=access(Permission.MANAGE_OWN_NOTIFICATIONS, "self"),
    )
    def my_subscriptions(principal: Caller) -> Any:
        with (
            api.allowed(principal, Permission.MANAGE_OWN_NOTIFICATIONS) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            rows = cur.execute(
                "SELECT id, channel, address, min_severity FROM notification_subscriptions"
                " WHERE staff_id = %s ORDER BY id",
                (principal.uuid,),
            ).fetchall()
        return [SubscriptionOut(**row) for row in rows]

    @api.router.post(
        "/me/notification-subscriptions",
        tags=["alert settings"],
        status_code=201,
        response_model=SubscriptionOut,
        openapi_extra=access(Permission.MANAGE_OWN_NOTIFICATIONS, "self"),
    )
    def subscribe(principal: Caller, body: SubscriptionIn) -> Any:
        """Be told on this channel about alerts of at least this severity for your units."""
        with api.allowed(principal, Permission.MANAGE_OWN_NOTIFICATIONS) as conn:
            check(body.channel, body.address)
            row = conn.execute(
                "INSERT INTO notification_subscriptions (staff_id, channel, address,"
                " min_severity) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (staff_id, channel, address)"
                " DO UPDATE SET min_severity = EXCLUDED.min_severity RETURNING id",
                (principal.uuid, body.channel, body.address, body.min_severity),
            ).fetchone()
        assert row is not None
        return SubscriptionOut(id=row[0], **body.model_dump())

    @api.router.delete(
        "/me/notification-subscriptions/{subscription_id}",
        tags=["alert settings"],
        status_code=204,
        openapi_extra=access(Permission.MANAGE_OWN_NOTIFICATIONS, "self"),
    )
    def unsubscribe(principal: Caller, subscription_id: int) -> Response:
        with api.allowed(principal, Permission.MANAGE_OWN_NOTIFICATIONS) as conn:
            deleted = conn.execute(
                "DELETE FROM notification_subscriptions WHERE id = %s AND staff_id = %s",
                (subscription_id, principal.uuid),
            ).rowcount
        if not deleted:
            raise NotVisibleError
        return Response(status_code=204)
