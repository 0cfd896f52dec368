"""Mosquitto's dynamic-security configuration, made from the installation's password file.

Mosquitto's ``acl_file`` cannot keep a device out of the ingest's identity: any login may connect
with the ingest's client id (Mosquitto then disconnects the ingest and hands the thief its
session), and any login may join the ingest's shared-subscription group (the broker then gives
the device its share of the readings and drops them, since the device may not read them). The
dynamic-security plugin that ships with Mosquitto 2 closes both: a client may be bound to one
client id, and subscriptions are checked when they are made, ``$share/<group>/`` included.

The operator keeps making passwords with ``mosquitto_passwd`` (deploy/mosquitto/README.md); this
module turns that file into the plugin's JSON. Mosquitto 2 hashes both the same way (PBKDF2 with
SHA-512, a 12-byte salt), so the passwords carry over as hashes and never pass through here in
clear. Every user but the platform's is a device: it may log in only with its device id as client
id, publish only on its own topics, and subscribe to nothing.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ingest.service import TOPIC_KINDS
from ingest.topics import DEVICE_ID, device_topic, subscription

INGEST_USER = "heimvakt-ingest"
"""The ingest's broker login (compose.yaml, deploy/.env.example)."""
RESERVED_PREFIX = "heimvakt-"
"""Platform identities (the ingest's login and client ids) start with this; no device may."""
PLATFORM_ROLE = "ingest"
_SALT_BYTES = 12
_HASH_BYTES = 64


class PasswordFileError(ValueError):
    """The password file cannot become a dynamic-security configuration as it is."""


@dataclass(frozen=True, slots=True)
class _Login:
    username: str
    salt: str
    password_hash: str
    iterations: int


def dynamic_security_config(
    passwd: str, *, topic_prefix: str, platform_users: Collection[str] = (INGEST_USER,)
) -> dict[str, Any]:
    """The plugin's configuration for every login in `passwd` (a mosquitto_passwd file).

    `platform_users` read every device's topics and nothing else, through plain or shared
    subscriptions, with any client id (each ingest worker has its own). Everything the
    configuration does not grant is denied, so no one can change it at runtime either: there is
    no ``$CONTROL`` access, and a change is a new file and a broker restart.
    """
    logins = _read_password_file(passwd)
    missing = sorted(set(platform_users) - {login.username for login in logins})
    if missing:
        raise PasswordFileError(f"the password file has no login for {', '.join(missing)}")
    clients: list[dict[str, Any]] = []
    roles = [_platform_role(topic_prefix)]
    for login in logins:
        client: dict[str, Any] = {
            "username": login.username,
            "password": login.password_hash,
            "salt": login.salt,
            "iterations": login.iterations,
        }
        if login.username in platform_users:
            client["roles"] = [{"rolename": PLATFORM_ROLE}]
        else:
            _check_device_id(login.username)
            role = f"device:{login.username}"
            client["clientid"] = login.username
            client["roles"] = [{"rolename": role}]
            roles.append(_device_role(role, topic_prefix, login.username))
        clients.append(client)
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def with_registry(passwd: str, *, registry: str, revoked: Collection[str]) -> str:
    """The operator's password file with the device registry's logins in it (`registry`, lines
    of ``id:$7$...``): for a login in both the registry's line counts, and a revoked device's
    line is dropped, so a device revoked in the registry can no longer connect."""
    registered = {line.partition(":")[0] for line in registry.splitlines() if line}
    kept = [
        line
        for line in passwd.splitlines()
        if line.partition(":")[0] not in registered | set(revoked)
    ]
    return "".join(f"{line}\n" for line in kept) + registry


def _platform_role(prefix: str) -> dict[str, Any]:
    acls = []
    for kind in TOPIC_KINDS:
        for topic_filter in (
            subscription(prefix, kind),
            subscription(prefix, kind, shared_group="+"),
        ):
            acls.append({"acltype": "subscribePattern", "topic": topic_filter, "allow": True})
        acls.append(
            {"acltype": "publishClientReceive", "topic": subscription(prefix, kind), "allow": True}
        )
    return {"rolename": PLATFORM_ROLE, "acls": acls}


def _device_role(name: str, prefix: str, device_id: str) -> dict[str, Any]:
    acls = [
        {
            "acltype": "publishClientSend",
            "topic": device_topic(prefix, device_id, kind),
            "allow": True,
        }
        for kind in TOPIC_KINDS
    ]
    return {"rolename": name, "acls": acls}


def _check_device_id(username: str) -> None:
    """A device's login is its device id, and so a topic level: no wildcard, no separator."""
    if DEVICE_ID.match(username) is None:
        raise PasswordFileError(
            f"login {username!r} is not a device id (1 to 64 of A-Z a-z 0-9 . _ -)"
        )
    if username.startswith(RESERVED_PREFIX):
        raise PasswordFileError(
            f"login {username!r}: device ids starting with {RESERVED_PREFIX!r} are reserved "
            "for the platform"
        )


def _read_password_file(passwd: str) -> list[_Login]:
    logins: list[_Login] = []
    seen: set[str] = set()
    for number, line in enumerate(passwd.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):  # comments, as Mosquitto reads the file
            continue
        username, colon, hashed = line.partition(":")
        if not colon or not username:
            raise PasswordFileError(f"line {number} is not user:hash")
        if username in seen:
            raise PasswordFileError(f"login {username!r} appears twice")
        seen.add(username)
        logins.append(_parse_hash(username, hashed))
    return logins


def _parse_hash(username: str, hashed: str) -> _Login:
    """``$7$<iterations>$<salt>$<hash>``: what Mosquitto 2's mosquitto_passwd writes."""
    parts = hashed.split("$")
    try:
        if len(parts) != 5 or parts[0] or parts[1] != "7":
            raise ValueError
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
        if iterations < 1 or len(salt) != _SALT_BYTES or len(digest) != _HASH_BYTES:
            raise ValueError
    except (ValueError, binascii.Error) as error:
        raise PasswordFileError(
            f"login {username!r} has no PBKDF2-SHA512 ($7$) hash: set its password again "
            "with Mosquitto 2's mosquitto_passwd"
        ) from error
    return _Login(username, parts[3], parts[4], iterations)
