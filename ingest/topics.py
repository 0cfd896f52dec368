"""Topic names of the wire contract: ``{prefix}/devices/{device_id}/{kind}``."""

from __future__ import annotations

import re

DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def readings_subscription(prefix: str) -> str:
    return f"{prefix}/devices/+/readings"


def readings_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/devices/{device_id}/readings"


def device_from_topic(prefix: str, topic: str) -> str | None:
    """The device id a topic names, or None when the topic is not a valid device topic.

    The device identity comes from the topic (which the broker's ACL ties to the device's
    credentials), never from the payload.
    """
    head = f"{prefix}/devices/"
    if not topic.startswith(head):
        return None
    device_id, _, kind = topic[len(head) :].partition("/")
    if not kind or "/" in kind or DEVICE_ID.match(device_id) is None:
        return None
    return device_id
