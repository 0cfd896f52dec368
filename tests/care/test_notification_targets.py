"""Staff name notification targets through the API; a target the dispatcher's channels would
refuse (SSRF: loopback, private, link-local, clear text) is refused when it is named, for
Apprise URLs as for webhooks, and nothing is stored."""

from __future__ import annotations

from tests.care.conftest import WorldClient
from tests.care.world import World

REFUSED = [
    ("apprise", "json://127.0.0.1:8123/x"),  # the reported attack
    ("apprise", "jsons://169.254.169.254/latest/meta-data/"),
    ("apprise", "mailtos://user:pw@example.com?smtp=127.0.0.1"),
    ("apprise", "no-such-service://x"),
    ("webhook", "http://127.0.0.1:8123/x"),
    ("webhook", "https://10.0.0.1/x"),
    ("email", "vakt@example.org\r\nBcc: everyone@example.org"),
]


def test_a_local_target_is_refused_when_staff_name_it(
    world_client: WorldClient, world: World
) -> None:
    nurse = {"Authorization": f"Bearer {world.tokens['hospital_nurse']}"}
    administrator = {"Authorization": f"Bearer {world.tokens['administrator']}"}
    accepted = []
    with world_client() as (client, conn):
        before = conn.execute("SELECT count(*) FROM notification_subscriptions").fetchone()
        for channel, address in REFUSED:
            subscribed = client.post(
                "/api/v1/me/notification-subscriptions",
                json={"channel": channel, "address": address},
                headers=nurse,
            )
            policy = client.put(
                f"/api/v1/organisations/{world.organisations['H']}/escalation-policy",
                json={"on_call_channel": channel, "on_call_address": address},
                headers=administrator,
            )
            for response in (subscribed, policy):
                if (
                    response.status_code != 422
                    or response.headers["content-type"] != "application/problem+json"
                ):
                    accepted.append((address, response.status_code))
        after = conn.execute("SELECT count(*) FROM notification_subscriptions").fetchone()
        policies = conn.execute("SELECT count(*) FROM escalation_policies").fetchone()
    assert not accepted, accepted
    assert before == after
    assert policies == (0,)


def test_a_public_service_target_is_accepted(world_client: WorldClient, world: World) -> None:
    nurse = {"Authorization": f"Bearer {world.tokens['hospital_nurse']}"}
    with world_client() as (client, _conn):
        response = client.post(
            "/api/v1/me/notification-subscriptions",
            json={"channel": "apprise", "address": "tgram://123456789:abcdefg_hijklmnop/1231"},
            headers=nurse,
        )
    assert response.status_code == 201, response.text


def test_a_patient_names_their_reminder_channel_by_the_same_rule(
    world_client: WorldClient, world: World
) -> None:
    patient = {"Authorization": f"Bearer {world.tokens['patient']}"}
    url = f"/api/v1/patients/{world.patients['own']}/reminder-channel"
    refused = [
        {"channel": channel, "address": address}
        for channel, address in REFUSED
        if channel != "webhook"
    ] + [
        {"channel": "email"},  # no address
        {"channel": "webhook", "address": "https://example.org/x"},  # not a reminder channel
    ]
    with world_client() as (client, conn):
        accepted = [
            (body, response.status_code)
            for body in refused
            if (response := client.put(url, json=body, headers=patient)).status_code != 422
            or response.headers["content-type"] != "application/problem+json"
        ]
        assert conn.execute("SELECT count(*) FROM reminder_channels").fetchone() == (0,)
        chosen = {"channel": "email", "address": "pasient@example.org"}
        assert client.put(url, json=chosen, headers=patient).json() == chosen
        assert client.get(url, headers=patient).json() == chosen
        assert client.put(url, json={"channel": "none"}, headers=patient).status_code == 200
        assert client.get(url, headers=patient).json() == {"channel": "none", "address": None}
    assert not accepted, accepted
