"""Topic names of the wire contract: ``{prefix}/devices/{device_id}/{kind}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    device_id: str
    kind: str


def subscription(prefix: str, kind: str, *, shared_group: str | None = None) -> str:
    """The filter for one kind of device topic; a shared group spreads it over several workers."""
    topic_filter = f"{prefix}/devices/+/{kind}"
    return f"$share/{shared_group}/{topic_filter}" if shared_group else topic_filter


def device_topic(prefix: str, device_id: str, kind: str) -> str:
    return f"{prefix}/devices/{device_id}/{kind}"


@lru_cache(maxsize=200_000)
def parse(prefix: str, topic: str) -> DeviceTopic | None:
    """The device and kind a topic names, or None when it is not a valid device topic.

    The device identity comes from the topic (which the broker's ACL ties to the device's
    credentials), never from the payload. Every message is parsed, and a device sends on the
    same few topics, so answers are remembered.
    """
    head = f"{prefix}/devices/"
    if not topic.startswith(head):
        return None
    device_id, _, kind = topic[len(head) :].partition("/")
    if not kind or "/" in kind or DEVICE_ID.match(device_id) is None:
        return None
    return DeviceTopic(device_id=device_id, kind=kind)
