"""Headless Chromium for the browser tests, driven by Playwright.

Playwright drives the system's Chromium (Debian's `chromium` package, which `make test`
installs when it may); Playwright's own browser download is not needed. Screenshots go to
test-artifacts/ (not committed), for a person to look at after a run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MISSING = "Chromium is not installed: `apt-get install -y chromium` (make test does it as root)"


def screenshot_path(name: str) -> Path:
    """Where a test saves a screenshot (test-artifacts/NAME.png)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"
