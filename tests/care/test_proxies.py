"""Relatives as the patient's proxies (care/proxies.py), through the whole app: the patient
invites, the relative accepts and logs in, sees the patient's page and fills in a questionnaire
marked as theirs; the patient withdraws and the relative's very next request is refused; an
ended consent is refused; a relative reaches no other patient; every look is in the patient's
access log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import jwt
from fastapi.testclient import TestClient

from alerts.reminders import Recipient, reminder_recipients
from care.proxies import do_withdraw_consent, reminder_relatives
from core.auth import Principal
from dashboard.pages.relatives import INVITE, WITHDRAW
from heimvakt.auth import SESSION_COOKIE
from tests.care.conftest import WorldClient
from tests.care.world import World
from tests.dashboard import BASE, of_class, show, text, texts
from tests.dashboard.test_own_view import send_request

RELATIVE_PASSWORD = "grønn-sykkel-under-eika-7"  # a test account's password


def _as(client: TestClient, token: str) -> dict[str, str]:
    """`client` as the holder of `token`: on the dashboard (its cookie) and the API."""
    client.cookies.set(SESSION_COOKIE, token)
    return {"Authorization": f"Bearer {token}"}


def _invite(client: TestClient, token: str, patient: UUID, **fields: Any) -> httpx.Response:
    body = {
        "display_name": "Siri Datter",
        "valid_to": (datetime.now(UTC) + timedelta(days=60)).isoformat(),
        **fields,
    }
    return client.post(
        f"/api/v1/patients/{patient}/relatives", json=body, headers=_as(client, token)
    )


def _accept(client: TestClient, code: str, username: str, password: str) -> httpx.Response:
    client.cookies.clear()
    return client.post(
        "/auth/invitations/accept?lang=en",
        data={"code": code, "username": username, "password": password},
        follow_redirects=False,
    )


def _send_daily_check(client: TestClient, patient: UUID) -> str:
    answers: dict[str, str | None] = {
        "more_breathless": "no",
        "more_swelling": "no",
        "more_cough": "yes",
    }
    response = client.post(
        f"{BASE}_dash-update-component",
        json=send_request("daily_symptoms", answers, pathname=f"{BASE}patients/{patient}"),
    )
    assert response.status_code == 200, response.text
    return text(next(iter(response.json()["response"].values()))["children"])


def test_invited_accepted_seen_answered_withdrawn_and_every_look_in_the_patients_log(
    world: World, world_client: WorldClient
) -> None:
    own = world.patients["own"]
    with world_client() as (client, conn):
        invited = _invite(client, world.tokens["patient"], own, answer_questionnaires=True)
        assert invited.status_code == 201, invited.text
        code = invited.json()["invitation_code"]

        assert (
            client.post(
                "/auth/invitations/accept",
                data={"code": code, "username": "siri", "password": RELATIVE_PASSWORD},
                headers={"Sec-Fetch-Site": "cross-site"},
            ).status_code
            == 403
        ), "another site cannot log a browser in as a relative"
        assert (
            _accept(client, "not-the-code", "siri", RELATIVE_PASSWORD)
            .headers["location"]
            .endswith("login?invitation=invitation&lang=en")
        )
        assert (
            _accept(client, code, "siri", "siri12345")
            .headers["location"]
            .endswith("login?invitation=password&lang=en")
        ), "the password policy holds for relatives"
        accepted = _accept(client, code, "siri", RELATIVE_PASSWORD)
        assert accepted.status_code == 303, accepted.text
        assert (
            _accept(client, code, "siri2", RELATIVE_PASSWORD)
            .headers["location"]
            .endswith("invitation=invitation&lang=en")
        ), "an invitation is accepted once"
        token = accepted.cookies[SESSION_COOKIE]
        bearer = _as(client, token)

        page = show(client, BASE, "?lang=en")
        assert texts(of_class(page, "user")) == ["Siri Datter", "Relative"]
        assert "Follow-up of Pasient own" in text(page)
        assert of_class(page, "my-check"), "the consent lets her answer"
        assert _send_daily_check(client, own).startswith("Thank you.")
        assert conn.execute(
            "SELECT r.display_name FROM questionnaire_responses q"
            " JOIN relatives r ON r.id = q.answered_by_relative_id WHERE q.patient_id = %s",
            (own,),
        ).fetchall() == [("Siri Datter",)]

        other = world.patients["other_team"]
        assert "Pasient other_team" not in text(show(client, f"{BASE}patients/{other}"))
        assert _send_daily_check(client, other).startswith("Your answers could not be saved")
        for method, path in (
            ("GET", f"/api/v1/patients/{own}"),
            ("GET", f"/api/v1/patients/{own}/readings"),
            ("GET", "/api/v1/patients"),
            ("GET", "/api/v1/me/access-log"),
            ("GET", f"/api/v1/patients/{own}/relatives"),
        ):
            assert client.request(method, path, headers=bearer).status_code == 403, path

        looks = client.get("/api/v1/me/access-log", headers=_as(client, world.tokens["patient"]))
        by_relative = [
            (e["resource"], e["action"], e["reason_code"])
            for e in looks.json()["items"]
            if e["actor_kind"] == "relative"
        ]
        assert sorted(by_relative) == [
            ("own-page", "read", "proxy"),
            ("proxied-patients", "read", "proxy"),
            ("questionnaire", "create", "proxy"),
        ]
        [look] = [
            row
            for row in of_class(show(client, BASE, "?lang=en"), "look-row")
            if "Siri Datter" in text(row)
        ]
        assert "Your relative, with your consent" in text(look)

        patient = _as(client, world.tokens["patient"])
        listed = client.get(f"/api/v1/patients/{own}/relatives", headers=patient).json()
        assert "Siri Datter" in [c["relative_name"] for c in listed]
        consent = invited.json()["consent"]["id"]
        withdrawn = client.post(
            f"/api/v1/patients/{own}/relatives/{consent}/withdraw", headers=patient
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["withdrawn_at"] is not None

        _as(client, token)
        assert of_class(show(client, BASE, "?lang=en"), "login-card"), "refused at once"
        daily_check = {
            "kind": "daily_symptoms",
            "answered_at": datetime.now(UTC).isoformat(),
            "more_breathless": False,
            "more_swelling": False,
            "more_cough": False,
        }
        assert (
            client.post(
                f"/api/v1/patients/{own}/questionnaires", json=daily_check, headers=bearer
            ).status_code
            == 401
        )
        assert conn.execute(
            "SELECT count(*) FROM local_sessions WHERE jti = %s", (_jti(token),)
        ).fetchone() == (0,), "her session ended with her last consent"


def withdraw(client: TestClient, consent: str) -> dict:
    """Press the withdraw button of `consent` on the own page, as the browser posts it; the
    answer's outputs."""
    return _press(client, {"consent": consent, "type": WITHDRAW})


_SPECS: dict[str, dict] = {}


def _press(client: TestClient, button: dict[str, str], *fields: str | None) -> dict:
    """Press a button of the own page's relatives section (`button`, a pattern-matching id),
    with the form's `fields` before the address; the answer's outputs."""
    if button["type"] not in _SPECS:  # the app's callbacks, the same in every world
        [_SPECS[button["type"]]] = [
            c
            for c in client.get(f"{BASE}_dash-dependencies").json()
            if c["inputs"] and button["type"] in c["inputs"][0]["id"]
        ]
    spec = _SPECS[button["type"]]
    states = [s["id"] for s in spec["state"]][: len(fields)]
    response = client.post(
        f"{BASE}_dash-update-component",
        json={
            "output": spec["output"],
            "outputs": [
                {"id": "action-status", "property": "children"},
                {"id": "page", "property": "children"},
            ],
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
            "changedPropIds": [json.dumps(button, separators=(",", ":")) + ".n_clicks"],
            "state": [
                *(
                    {"id": field, "property": "value", "value": value}
                    for field, value in zip(states, fields, strict=True)
                ),
                {"id": "url", "property": "pathname", "value": BASE},
                {"id": "url", "property": "search", "value": "?lang=en"},
            ],
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["response"]


def _jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def test_an_ended_consent_or_one_for_another_patient_opens_nothing(
    world: World, world_client: WorldClient
) -> None:
    own = world.patients["own"]
    with world_client() as (client, _conn):
        for relative in ("relative_expired", "relative_withdrawn"):
            _as(client, world.tokens[relative])
            assert of_class(show(client, f"{BASE}patients/{own}"), "login-card"), relative
        _as(client, world.tokens["relative_no_consent"])
        page = show(client, f"{BASE}patients/{own}", "?lang=en")
        assert "Patient not found" in text(page)
        assert "Pasient own" not in text(page)
        assert "Pasient own_no_plan" in text(show(client, BASE, "?lang=en")), (
            "she lands on the page of the patient whose consent she holds"
        )


def test_a_nurse_invites_only_with_the_patients_recorded_consent(
    world: World, world_client: WorldClient
) -> None:
    own = world.patients["own"]
    nurse = world.tokens["hospital_nurse"]
    with world_client() as (client, _conn):
        refused = _invite(client, nurse, own)
        assert refused.status_code == 422
        assert "consent" in refused.json()["detail"]
        invited = _invite(client, nurse, own, consent_note="Samtykke gitt muntlig 30.11.")
        assert invited.status_code == 201, invited.text
        assert invited.json()["consent"]["invited_by_kind"] == "staff"
        assert _invite(client, nurse, world.patients["other_team"]).status_code == 404


def test_the_patient_withdraws_from_her_page_and_the_relatives_next_request_is_refused(
    world: World, world_client: WorldClient
) -> None:
    own = world.patients["own"]
    consent = str(world.scenarios["own"].consent)
    with world_client() as (client, _conn):
        _as(client, world.tokens["relative"])
        assert "Follow-up of Pasient own" in text(show(client, BASE, "?lang=en"))

        _as(client, world.tokens["patient"])
        [relatives] = of_class(show(client, BASE, "?lang=en"), "my-relatives")
        assert "Pårørende relative" in text(relatives)
        assert "withdrawn" in text(relatives), "the one she withdrew before is listed too"
        response = withdraw(client, consent)
        said = response["action-status"]["children"]
        assert text(said) == "Consent withdrawn. Pårørende relative can no longer see your page."

        _as(client, world.tokens["relative"])
        page = show(client, f"{BASE}patients/{own}", "?lang=en")
        assert of_class(page, "login-card")
        assert "Pasient own" not in text(page)


def test_the_patient_invites_from_her_page_and_the_code_lets_the_relative_in(
    world: World, world_client: WorldClient
) -> None:
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    answering = {"answer": "yes", "type": INVITE}
    with world_client() as (client, conn):
        _as(client, world.tokens["patient"])
        refused = _press(client, answering, "Siri Datter", None, "2020-01-01")
        assert text(refused["action-status"]["children"]) == (
            "Write their name and choose a last day after today."
        )
        invited = _press(client, answering, "Siri Datter", "siri@example.org", until)
        said = text(invited["action-status"]["children"])
        code = said.removeprefix("Give Siri Datter this code: ").partition(".")[0]
        assert said.endswith("It works once and is shown only now.")
        assert "Siri Datter" in text(of_class(invited["page"]["children"], "my-relatives"))
        assert conn.execute(
            "SELECT see_own_view, receive_reminders, answer_questionnaires, invited_by_kind"
            " FROM proxy_consents c JOIN relatives r ON r.id = c.relative_id"
            " WHERE r.display_name = 'Siri Datter'"
        ).fetchall() == [(True, True, True, "patient")]

        accepted = _accept(client, code, "siri", RELATIVE_PASSWORD)
        assert accepted.status_code == 303, accepted.text
        assert "Follow-up of Pasient own" in text(show(client, BASE, "?lang=en"))


def test_the_relatives_who_get_the_reminders_are_those_whose_valid_consent_includes_them(
    world: World, world_client: WorldClient
) -> None:
    own = world.patients["own"]
    patient = Principal(kind="patient", id=str(own), name="", role="patient")
    with world_client() as (client, conn):
        invited = _invite(
            client,
            world.tokens["patient"],
            own,
            email="siri@example.org",
            receive_reminders=True,
        ).json()
        assert reminder_relatives(conn, patient_ids=[own], now=datetime.now(UTC)) == {}, (
            "not before she accepts; the world's relatives gave no address"
        )
        assert _accept(client, invited["invitation_code"], "siri", RELATIVE_PASSWORD).is_redirect
        [siri] = reminder_relatives(conn, patient_ids=[own], now=datetime.now(UTC))[own]
        assert (siri.display_name, siri.email, siri.language) == (
            "Siri Datter",
            "siri@example.org",
            "nb",
        )
        assert reminder_recipients(conn, patient_ids=[own], now=datetime.now(UTC)) == {
            own: [Recipient("email", "siri@example.org", "nb")]
        }, "the sweep reminds her (the patient chose no channel of their own)"
        do_withdraw_consent(
            conn,
            patient_id=own,
            consent_id=UUID(invited["consent"]["id"]),
            withdrawn_by=patient,
            now=datetime.now(UTC),
        )
        assert reminder_relatives(conn, patient_ids=[own], now=datetime.now(UTC)) == {}
