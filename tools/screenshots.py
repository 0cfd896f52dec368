"""Take the README's screenshots in a real browser from a real demo.

    python -m tools.screenshots            # writes docs/images/worklist.png and patient.png

It starts `heimvakt up --demo` on a fresh data directory and a free port, waits until the
demo has an alert and a notification in the demo outbox, logs in as the demo nurse in headless
Chromium driven by Playwright, and saves the worklist and the alerted patient's page. It uses
the machine's Chromium (CHROMIUM, default /usr/bin/chromium): Playwright's own browser
download is not needed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, sync_playwright

from heimvakt.demo import DEMO_MAIL_DOMAIN, DEMO_PASSWORD, DEMO_STAFF
from heimvakt.embedded import free_port

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
ALERT_PATIENT = "Bjørn Prøvestad"
"""The demo patient whose saturation falls over the week: the demo's first alert."""
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def start_demo(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEIMVAKT_")}
    env.update(HEIMVAKT_DATA_DIR=str(data_dir), HEIMVAKT_HTTP_PORT=str(port))
    process = subprocess.Popen(
        [sys.executable, "-m", "heimvakt", "up", "--demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        print(f"  heimvakt: {line.rstrip()}", flush=True)
        found = re.search(r"Dashboard: (http://\S+)", line)
        if found:
            # Keep reading, so the platform never blocks on a full pipe.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, found[1]
    raise RuntimeError("heimvakt up --demo ended before serving the dashboard")


def wait_for_text(page: Page, text: str, *, timeout: float) -> None:
    """Reload until `text` is on the page (the dashboard also refreshes itself)."""
    deadline = time.monotonic() + timeout
    while text not in page.inner_text("body"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} did not appear on {page.url}")
        page.wait_for_timeout(1000)


def take(url: str, chromium: str, images: Path) -> None:
    images.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox cannot run as root, as in a container or CI.
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="en-GB")
            page.goto(f"{url}?lang=en")
            page.fill("#username", DEMO_STAFF[0][0])
            page.fill("#password", DEMO_PASSWORD)
            page.click("button[type=submit]")
            wait_for_text(page, ALERT_PATIENT, timeout=60)
            wait_for_text(page, DEMO_MAIL_DOMAIN, timeout=120)
            page.screenshot(path=images / "worklist.png", full_page=True)
            print(f"  wrote {images / 'worklist.png'}", flush=True)

            page.get_by_role("link", name=ALERT_PATIENT).click()
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            wait_for_text(page, "Last 7 days", timeout=30)
            page.wait_for_timeout(1500)  # the figure's transition
            page.screenshot(path=images / "patient.png", full_page=True)
            print(f"  wrote {images / 'patient.png'}", flush=True)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=IMAGES, help="default: docs/images")
    parser.add_argument(
        "--chromium",
        default=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        help="the browser binary; default: $CHROMIUM or /usr/bin/chromium",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="heimvakt-screenshots-") as temporary:
        process, url = start_demo(Path(temporary) / "data", free_port())
        try:
            take(url, args.chromium, args.out)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
