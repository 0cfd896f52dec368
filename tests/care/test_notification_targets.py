"""Staff name notification targets, and a patient their reminder channel, through the API; a
target the dispatcher's channels would refuse (SSRF: loopback, private, link-local, clear
text) is refused when it is named, for Apprise URLs as for webhooks, and nothing is stored."""

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
    patient = {"Authorization": f"Bearer {world.tokens['patient']}"}
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
            # A patient's reminder channel: webhooks are not one, so refused all the same.
            reminders = client.put(
                f"/api/v1/patients/{world.patients['own']}/reminder-channel",
                json={"channel": channel, "address": address},
                headers=patient,
            )
            for response in (subscribed, policy, reminders):
                if (
                    response.status_code != 422
                    or response.headers["content-type"] != "application/problem+json"
                ):
                    accepted.append((address, response.status_code))
        after = conn.execute("SELECT count(*) FROM notification_subscriptions").fetchone()
        policies = conn.execute("SELECT count(*) FROM escalation_policies").fetchone()
        reminder_channels = conn.execute("SELECT count(*) FROM reminder_channels").fetchone()
    assert not accepted, accepted
    assert before == after
    assert policies == (0,)
    assert reminder_channels == (0,)


def test_a_public_service_target_is_accepted(world_client: WorldClient, world: World) -> None:
    nurse = {"Authorization": f"Bearer {world.tokens['hospital_nurse']}"}
    patient = {"Authorization": f"Bearer {world.tokens['patient']}"}
    url = f"/api/v1/patients/{world.patients['own']}/reminder-channel"
    push = {"channel": "apprise", "address": "tgram://123456789:abcdefg_hijklmnop/1231"}
    with world_client() as (client, _conn):
        response = client.post("/api/v1/me/notification-subscriptions", json=push, headers=nurse)
        assert response.status_code == 201, response.text
        # The patient chooses push reminders, then e-mail without an address, then none.
        assert client.put(url, json=push, headers=patient).json() == push
        assert client.get(url, headers=patient).json() == push
        nameless = client.put(url, json={"channel": "email"}, headers=patient)
        assert nameless.status_code == 422
        assert nameless.headers["content-type"] == "application/problem+json"
        assert client.put(url, json={"channel": "none"}, headers=patient).status_code == 200
        assert client.get(url, headers=patient).json() == {"channel": "none", "address": None}
