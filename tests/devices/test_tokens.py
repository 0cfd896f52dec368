"""Device tokens: shown once, stored only as a hash, good for one device until revoked."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devices.service import do_register_device
from devices.tokens import (
    device_for_token,
    do_issue_token,
    do_revoke_token,
    token_prefix,
    tokens_for_device,
)
from tests.support import seed_patient_with_device

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_an_issued_token_admits_its_device_and_is_stored_only_as_a_hash(
    conn: psycopg.Connection,
) -> None:
    seed_patient_with_device(conn, device_id="ox-1")
    token = do_issue_token(conn, device_id="ox-1", now=NOW)

    assert token.startswith("hv_")
    assert len(token) == len("hv_") + 43  # 32 random bytes, base64url without padding
    assert device_for_token(conn, token=token, device_id="ox-1")
    row = conn.execute("SELECT token_hash, prefix, created_at FROM device_tokens").fetchone()
    assert row == (hashlib.sha256(token.encode()).digest(), token[:11], NOW)
    dump = conn.execute("SELECT device_tokens::text FROM device_tokens").fetchone()
    assert dump is not None
    assert token[11:] not in dump[0]


def test_tokens_are_different_every_time(conn: psycopg.Connection) -> None:
    seed_patient_with_device(conn, device_id="ox-1")
    tokens = {do_issue_token(conn, device_id="ox-1", now=NOW) for _ in range(20)}
    assert len(tokens) == 20
    assert all(device_for_token(conn, token=t, device_id="ox-1") for t in tokens)


def test_a_token_does_not_admit_another_device(conn: psycopg.Connection) -> None:
    seed_patient_with_device(conn, device_id="ox-1", name="First")
    seed_patient_with_device(conn, device_id="ox-2", name="Second")
    token = do_issue_token(conn, device_id="ox-1", now=NOW)

    assert not device_for_token(conn, token=token, device_id="ox-2")
    assert not device_for_token(conn, token=token + "x", device_id="ox-1")
    assert not device_for_token(conn, token="hv_guess", device_id="ox-1")
    assert not device_for_token(conn, token="", device_id="ox-1")


@pytest.mark.parametrize("by", ["prefix", "id"])
def test_a_revoked_token_is_refused_and_the_devices_other_tokens_still_work(
    conn: psycopg.Connection, by: str
) -> None:
    seed_patient_with_device(conn, device_id="ox-1")
    old = do_issue_token(conn, device_id="ox-1", now=NOW)
    new = do_issue_token(conn, device_id="ox-1", now=NOW + timedelta(minutes=1))
    [_, listed_old] = tokens_for_device(conn, device_id="ox-1")
    assert listed_old.prefix == token_prefix(old)

    name = {"prefix": token_prefix(old)} if by == "prefix" else {"token_id": listed_old.id}
    assert do_revoke_token(conn, now=NOW + timedelta(hours=1), **name)

    assert not device_for_token(conn, token=old, device_id="ox-1")
    assert device_for_token(conn, token=new, device_id="ox-1")
    revoked = {t.prefix: t.revoked_at for t in tokens_for_device(conn, device_id="ox-1")}
    assert revoked == {token_prefix(old): NOW + timedelta(hours=1), token_prefix(new): None}


def test_revoking_again_keeps_the_first_revocation(conn: psycopg.Connection) -> None:
    seed_patient_with_device(conn, device_id="ox-1")
    token = do_issue_token(conn, device_id="ox-1", now=NOW)
    assert do_revoke_token(conn, prefix=token_prefix(token), now=NOW)
    assert not do_revoke_token(conn, prefix=token_prefix(token), now=NOW + timedelta(days=1))
    assert not do_revoke_token(conn, prefix="hv_nothing", now=NOW)
    [listed] = tokens_for_device(conn, device_id="ox-1")
    assert listed.revoked_at == NOW


def test_a_token_is_named_by_exactly_one_of_id_and_prefix(conn: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        do_revoke_token(conn, now=NOW)


def test_no_token_is_issued_for_an_unknown_device(conn: psycopg.Connection) -> None:
    with pytest.raises(LookupError):
        do_issue_token(conn, device_id="ghost", now=NOW)
    assert conn.execute("SELECT count(*) FROM device_tokens").fetchone() == (0,)


def test_deleting_a_device_deletes_its_tokens(conn: psycopg.Connection) -> None:
    do_register_device(conn, device_id="spare", kind="scale")
    do_issue_token(conn, device_id="spare", now=NOW)
    conn.execute("DELETE FROM devices WHERE id = 'spare'")
    assert conn.execute("SELECT count(*) FROM device_tokens").fetchone() == (0,)
