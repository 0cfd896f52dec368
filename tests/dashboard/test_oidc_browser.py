"""Log-in through HelseID and ID-porten in a real browser, against real OpenID Connect servers.

One chromium and one Node.js process with two `oidc-provider` servers (tests/oidc_provider.mjs)
for the module: one like HelseID (PAR, private_key_jwt and DPoP with a server nonce required,
an HPR number claim), one like ID-porten (acr levels, the `pid` claim). A nurse logs in with
HelseID, sees her worklist and logs out at Heimvakt and at the server; a patient logs in with
ID-porten, is found by the national id a coordinator registered, and sees only their own page.
Too low an acr, a replayed state, a wrong nonce, another client's ID token and an unknown HPR
number are each refused with a page that says so and an access-log row. Every log line,
address and answer of the run is searched for the national id at the end.

oidc-provider is installed once outside the repository, like axe-core (.ci/run does it):
``npm install --prefix ~/.cache/heimvakt/oidc-provider oidc-provider@9``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import httpx
import pytest
from plotly.utils import PlotlyJSONEncoder
from psycopg_pool import ConnectionPool

from care.national_ids import NationalIds, do_register_national_id
from core.clock import SystemClock
from core.i18n import translator
from core.oidc import ClientKeys, log_in_clients
from core.settings import OidcIssuerSetting
from dashboard.pages.login import login_page
from heimvakt.embedded import free_port
from heimvakt.oidc_login import OIDC_PATH, OidcLogIns
from tests.browser_checks import CHROMIUM, serve_app, severe_accessibility_violations
from tests.dashboard import seed_patient, team_nurse, text

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # a chromium and Node.js

PROVIDER_DIR: Final = Path(
    os.environ.get("HEIMVAKT_OIDC_PROVIDER_DIR")
    or Path.home() / ".cache" / "heimvakt" / "oidc-provider"
)
PROVIDER_VERSION: Final = "oidc-provider@9"
SCRIPT: Final = Path(__file__).resolve().parents[1] / "oidc_provider.mjs"
NATIONAL_ID: Final = "01017012345"
HPR: Final = "565501872"
HPR_CLAIM: Final = "helseid://claims/hpr/hpr_number"
LOA_HIGH: Final = "idporten-loa-high"
LOA_SUBSTANTIAL: Final = "idporten-loa-substantial"


def _provider_installed() -> Path:
    """The npm package in the cache directory, installed there if missing."""
    if shutil.which("node") is None:
        pytest.skip("no Node.js to run oidc-provider with (apt-get install npm)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("no npm to install oidc-provider with (apt-get install npm)")
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(PROVIDER_DIR),
                "--no-audit",
                "--no-fund",
                PROVIDER_VERSION,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return PROVIDER_DIR


@dataclass
class Run:
    """The module's app, servers and browser, and everything the run said and showed."""

    base: str
    helseid: str
    idporten: str
    browser: Any
    nurse: UUID
    kari: UUID
    other: UUID
    pool: ConnectionPool
    seen: list[str] = field(default_factory=list)
    """Every address the browser asked for and every answer of Heimvakt's it read."""
    logs: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


def _servers(app: str, helseid_port: int, idporten_port: int) -> dict[str, Any]:
    callback = f"{app}{OIDC_PATH}/{{}}/callback"
    client = {
        "client_id": "heimvakt",
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "ES256",
        "jwks_uri": f"{app}{OIDC_PATH}/jwks.json",
        "post_logout_redirect_uris": [f"{app}/app/login"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    }
    return {
        "helseid": {
            "port": helseid_port,
            "require_par": True,
            "dpop_nonce": True,
            "clients": [
                {
                    **client,
                    "redirect_uris": [callback.format("helseid")],
                    "dpop_bound_access_tokens": True,
                    "require_pushed_authorization_requests": True,
                }
            ],
            "claims": {"openid": ["sub"], "hpr": [HPR_CLAIM]},
            "accounts": {"nurse-kari": {HPR_CLAIM: HPR}, "stranger": {HPR_CLAIM: "999999"}},
        },
        "idporten": {
            "port": idporten_port,
            "require_par": False,
            "dpop_nonce": False,
            "acr_values": [LOA_SUBSTANTIAL, LOA_HIGH],
            "clients": [{**client, "redirect_uris": [callback.format("idporten")]}],
            "claims": {"openid": ["sub", "pid"]},
            "accounts": {"citizen-kari": {"pid": NATIONAL_ID}},
        },
    }


def _settings(helseid: str, idporten: str) -> list[OidcIssuerSetting]:
    return [
        OidcIssuerSetting.model_validate(item)
        for item in (
            {
                "issuer": helseid,
                "audience": "heimvakt-api",
                "jwks_url": f"{helseid}/jwks",
                "kind": "staff",
                "algorithms": ["RS256"],
                "hpr_claim": HPR_CLAIM,
                "log_in": {
                    "name": "helseid",
                    "label": "HelseID",
                    "client_id": "heimvakt",
                    "scope": "openid hpr",
                    "dpop": True,
                },
            },
            {
                "issuer": idporten,
                "audience": "heimvakt-api",
                "jwks_url": f"{idporten}/jwks",
                "kind": "patient",
                "algorithms": ["RS256"],
                "required_acr": [LOA_HIGH],
                "log_in": {
                    "name": "idporten",
                    "label": "ID-porten",
                    "client_id": "heimvakt",
                    "acr_values": LOA_HIGH,
                },
            },
        )
    ]


@pytest.fixture(scope="module")
def run(module_database_url: str) -> Iterator[Run]:
    provider_dir = _provider_installed()
    app_port, helseid_port, idporten_port = free_port(), free_port(), free_port()
    app = f"http://127.0.0.1:{app_port}"
    helseid, idporten = f"http://127.0.0.1:{helseid_port}", f"http://127.0.0.1:{idporten_port}"
    clock = SystemClock()  # the servers sign with the real time
    installation_key = os.urandom(32)
    national_ids = NationalIds.from_installation_key(installation_key)
    logs: list[str] = []
    collector = _Collect(logs)
    watched = [logging.getLogger(), logging.getLogger("uvicorn.access")]
    with ConnectionPool(module_database_url, min_size=1, max_size=4) as pool:
        with pool.connection() as conn:
            kari = seed_patient(conn, name="Kari Testesen").patient_id
            other = seed_patient(conn, name="Ola Annensen").patient_id
            do_register_national_id(
                conn, patient_id=kari, national_id=NATIONAL_ID, keys=national_ids
            )
        nurse = team_nurse(pool)
        with pool.connection() as conn:
            conn.execute("UPDATE staff SET hpr_number = %s WHERE id = %s", (HPR, nurse))
        keys = ClientKeys(pool, installation_key=installation_key, clock=clock)
        oidc = OidcLogIns(
            clients=log_in_clients(
                _settings(helseid, idporten),
                pool=pool,
                clock=clock,
                keys=keys,
                redirect_base=f"{app}{OIDC_PATH}",
            ),
            keys=keys,
            national_ids=national_ids,
            session_lifetime=timedelta(hours=8),
        )
        servers = subprocess.Popen(
            ["node", str(SCRIPT), json.dumps(_servers(app, helseid_port, idporten_port))],
            env={**os.environ, "OIDC_PROVIDER_DIR": str(provider_dir)},
            # Its warnings and refusals go to the test's own output.
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            with (
                serve_app(pool, clock, port=app_port, oidc=oidc, log_level="info") as base,
                sync_api.sync_playwright() as playwright,
            ):
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"]
                )
                said = _until_ready(servers)  # started together with the app and the browser
                assert said[-1:] == ["ready"], "\n".join(said)
                # After uvicorn has set up its loggers, which drops handlers added before.
                for logger in watched:
                    logger.addHandler(collector)
                yield Run(base, helseid, idporten, browser, nurse, kari, other, pool, logs=logs)
                browser.close()
        finally:
            servers.terminate()
            servers.communicate(timeout=10)
            for logger in watched:
                logger.removeHandler(collector)


def _until_ready(servers: subprocess.Popen[str]) -> list[str]:
    """What the servers print up to their "ready" (Node.js warns first), or up to their end."""
    assert servers.stdout is not None
    said = []
    for line in servers.stdout:
        said.append(line.strip())
        if said[-1] == "ready":
            break
    return said


def _page(run: Run) -> Any:
    """A fresh browser (no cookies) whose every address and Heimvakt answer is kept."""
    context = run.browser.new_context()
    page = context.new_page()

    def keep(response: Any) -> None:
        run.seen.append(response.url)
        if response.url.startswith(run.base) and response.status < 300:
            with contextlib.suppress(sync_api.Error):  # a body the browser no longer holds
                run.seen.append(response.text())

    page.on("response", keep)
    return page


def _log_in(page: Any, run: Run, issuer: str, account: str, level: str | None = None) -> None:
    """Straight from the log-in's address, then the server's form."""
    page.goto(f"{run.base}{OIDC_PATH}/{issuer}/login?lang=en")
    _at_the_server(page, account, level)


def _at_the_server(page: Any, account: str, level: str | None = None) -> None:
    page.get_by_label("Account").fill(account)
    if level is not None:
        page.get_by_label("Level").select_option(level)
    page.get_by_role("button", name="Log in").click()


def _refusals(run: Run, cause: str) -> list[tuple[str, str | None]]:
    with run.pool.connection() as conn:
        return conn.execute(
            "SELECT actor_kind, hpr_number FROM access_log WHERE resource = %s",
            (f"log-in refused: {cause}",),
        ).fetchall()


def test_a_nurse_logs_in_with_helseid_sees_her_worklist_and_logs_out_everywhere(
    run: Run,
) -> None:
    page = _log_in_nurse(run)
    page.wait_for_selector("text=Kari Testesen")
    assert "Ola Annensen" in page.inner_text("main")  # both are her team's patients

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Yes, log me out").click()
    page.wait_for_url(f"{run.base}/app/login", wait_until="commit")
    with run.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM oidc_sessions").fetchone() == (0,)
    # The server's session has ended too: it asks who you are again.
    page.goto(f"{run.base}{OIDC_PATH}/helseid/login")
    page.get_by_label("Account").wait_for()
    page.context.close()


def _log_in_nurse(run: Run) -> Any:
    """From the dashboard's log-in page, as a nurse would."""
    page = _page(run)
    page.goto(f"{run.base}/app/login?lang=en")
    button = page.get_by_role("link", name="Log in with HelseID")
    button.wait_for()
    assert severe_accessibility_violations(page) == []  # the page with both issuers' buttons
    button.click()
    _at_the_server(page, "nurse-kari")
    return page


def test_a_patient_logs_in_with_idporten_and_sees_only_their_own_page(run: Run) -> None:
    page = _page(run)
    _log_in(page, run, "idporten", "citizen-kari", LOA_HIGH)
    page.wait_for_selector(".own-view")
    body = page.inner_text("main")
    assert "Kari Testesen" in body or "My follow-up" in body
    assert "Ola Annensen" not in body
    page.wait_for_selector("text=You logged in and were recognised by your national identity")
    page.goto(f"{run.base}/app/patients/{run.other}?lang=en")
    page.wait_for_selector("text=Patient not found")
    page.context.close()
    with run.pool.connection() as conn:
        assert conn.execute(
            "SELECT patient_id FROM identities WHERE issuer = %s", (run.idporten,)
        ).fetchall() == [(run.kari,)]


def test_an_unknown_hpr_number_is_not_registered_here(run: Run) -> None:
    page = _page(run)
    _log_in(page, run, "helseid", "stranger")
    page.wait_for_selector("text=You are not registered here.")
    page.context.close()
    assert _refusals(run, "unknown") == [("anonymous", "999999")]
    with run.pool.connection() as conn:
        assert conn.execute(
            "SELECT count(*) FROM staff WHERE hpr_number = '999999'"
        ).fetchone() == (0,)


def _http_log_in(
    client: httpx.Client, run: Run, issuer: str, account: str, level: str | None = None
) -> tuple[str, httpx.Response]:
    """The flow a browser follows, over HTTP: Heimvakt, the server's log-in form, back to
    Heimvakt's callback; the callback's address and Heimvakt's answer to it."""
    answer = client.get(f"{run.base}{OIDC_PATH}/{issuer}/login")
    while answer.is_redirect:
        answer = client.get(answer.url.join(answer.headers["location"]))
    uid = re.search(r'action="/interaction/([^/]+)/login"', answer.text)
    assert uid is not None, answer.text
    form = {"account": account, **({"acr": level} if level else {})}
    answer = client.post(answer.url.join(f"/interaction/{uid[1]}/login"), data=form)
    while answer.is_redirect:
        target = str(answer.url.join(answer.headers["location"]))
        answer = client.get(target)
        if target.startswith(f"{run.base}{OIDC_PATH}/{issuer}/callback"):
            run.seen.append(target)
            return target, answer
    raise AssertionError(f"the flow did not come back: {answer.status_code} {answer.text[:200]}")


@pytest.mark.parametrize(
    ("issuer", "account", "level", "forged", "refusal"),
    [
        ("idporten", "citizen-kari", LOA_SUBSTANTIAL, None, "acr"),
        ("helseid", "nurse-kari", None, {"nonce": "not-the-one-sent"}, "nonce"),
        ("helseid", "nurse-kari", None, {"aud": "another-client"}, "invalid"),
    ],
)
def test_a_log_in_that_does_not_hold_is_refused(
    run: Run,
    issuer: str,
    account: str,
    level: str | None,
    forged: dict[str, str] | None,
    refusal: str,
) -> None:
    """Too low an acr; an ID token the server signed with another nonce, or for another
    client, in the real flow."""
    if forged is not None:
        httpx.post(f"{run.helseid}/__test/tamper", json=forged).raise_for_status()
    with httpx.Client() as client:
        _, answer = _http_log_in(client, run, issuer, account, level)
    assert answer.headers["location"] == f"/app/login?refused={refusal}"
    assert "set-cookie" not in answer.headers
    assert _refusals(run, refusal) == [("anonymous", None)]


def test_a_replayed_state_is_refused(run: Run) -> None:
    with httpx.Client() as client:
        callback, answer = _http_log_in(client, run, "helseid", "nurse-kari")
    assert answer.headers["location"] == "/app/"
    with httpx.Client() as thief:  # someone who copied the address, code and state included
        again = thief.get(callback)
    assert again.headers["location"] == "/app/login?refused=state"
    assert "set-cookie" not in again.headers
    assert _refusals(run, "state") == [("anonymous", None)]


@pytest.mark.parametrize("refusal", ["unknown", "acr", "state", "nonce", "invalid", "issuer"])
def test_each_refusal_says_why_in_every_language(refusal: str) -> None:
    def shown(language: str) -> str:
        page = login_page(t=translator(language), failed=False, refused=refusal)
        return text(json.loads(json.dumps(page, cls=PlotlyJSONEncoder)))

    assert "Please" in shown("en") or "Log in again" in shown("en") or "Ask" in shown("en")
    assert shown("nb") != shown("en")
    assert shown("nn") != shown("en")


def test_the_national_id_is_in_no_log_line_address_or_answer(run: Run) -> None:
    """Last in the module: everything the run logged, asked for and answered. It logs the
    patient in itself (found by her national id), so it holds wherever pytest-xdist runs it."""
    page = _page(run)
    _log_in(page, run, "idporten", "citizen-kari", LOA_HIGH)
    page.wait_for_selector(".own-view")
    page.context.close()
    assert any("/callback?" in seen for seen in run.seen)
    assert any("GET /app/" in line for line in run.logs)  # the access log was caught
    assert [seen for seen in run.seen if NATIONAL_ID in seen] == []
    assert [line for line in run.logs if NATIONAL_ID in line] == []
    with run.pool.connection() as conn:
        rows = conn.execute("SELECT to_jsonb(l)::text FROM access_log l").fetchall()
    assert [row for row in rows if NATIONAL_ID in row[0]] == []
