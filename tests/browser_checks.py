"""What every browser test shares: the whole app served on a real port, and the checks a page
must pass in the browser (axe-core's accessibility rules, no page-level horizontal scroll).

axe-core comes from its npm package, installed once into a cache directory outside the
repository (`.ci/run` installs it; `axe_source` installs it on first use where npm is on the
machine): ``npm install --prefix ~/.cache/heimvakt/axe axe-core@4``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Final

import pytest
import uvicorn
from psycopg_pool import ConnectionPool

from core.auth import TokenVerifier
from core.clock import Clock
from heimvakt.app import create_app
from heimvakt.embedded import free_port
from heimvakt.oidc_login import NO_OIDC, OidcLogIns
from tests.dashboard import issuer_for
from tests.ingest.conftest import TEST_LIMITS

CHROMIUM: Final = shutil.which("chromium") or shutil.which("chromium-browser")
AXE_DIR: Final = Path(
    os.environ.get("HEIMVAKT_AXE_DIR") or Path.home() / ".cache" / "heimvakt" / "axe"
)
AXE_VERSION: Final = "axe-core@4"

_RUN_AXE: Final = """
async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => ["serious", "critical"].includes(v.impact))
    .map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}
"""


@contextmanager
def serve_app(
    pool: ConnectionPool,
    clock: Clock,
    *,
    port: int | None = None,
    oidc: OidcLogIns = NO_OIDC,
    log_level: str = "warning",
) -> Iterator[str]:
    """The whole app on a real port, as `heimvakt up` serves it; yields its base address."""
    issuer = issuer_for(pool, clock)
    port = port or free_port()
    app = create_app(
        pool=pool,
        clock=clock,
        broker_connected=lambda: True,
        after_store=[],
        limits=TEST_LIMITS,
        verifier=TokenVerifier([], local=issuer),
        public_url=f"http://127.0.0.1:{port}",
        local_issuer=issuer,
        secure_cookie=False,
        oidc=oidc,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@cache
def axe_source() -> str:
    """axe.min.js from the npm package in the cache directory, installed there if missing."""
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("no npm to install axe-core with (apt-get install npm)")
        subprocess.run(
            [npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", AXE_VERSION],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return script.read_text(encoding="utf-8")


def severe_accessibility_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now.

    The script is evaluated by Playwright, which the page's Content-Security-Policy does not
    govern: a script tag would be inline script, which the policy rightly refuses."""
    page.evaluate(axe_source())
    violations: list[str] = page.evaluate(_RUN_AXE)
    return violations


def scrolls_sideways(page: Any) -> bool:
    """Whether the page as a whole is wider than the window (a table may scroll in itself)."""
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth"))
