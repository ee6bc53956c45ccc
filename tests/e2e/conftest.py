"""End-to-end fixtures: a headless Chromium (Debian's `chromium` package, which `make browser` installs)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
PAGE_TIMEOUT_S = 90
# Offline, quiet and sandbox-free (tests may run as root); the virtual-time budget lets async handlers
# (an <img onerror>, an <svg onload>) fire before the DOM is dumped, so an injected one would show.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--virtual-time-budget=3000",
)

DumpDom = Callable[..., str]


def _find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a Chromium binary (`make browser` installs Debian's package)."""
    found = _find_chromium()
    if found is None:
        pytest.fail("headless Chromium is not installed: `make browser` installs Debian's chromium package")
    return found


@pytest.fixture(scope="session")
def dump_dom(chromium: str) -> DumpDom:
    """Open a local page in headless Chromium and return its DOM after scripts (if any) ran."""

    def dump(page: Path, *, screenshot: Path | None = None) -> str:
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
            if screenshot is not None:
                shot = [*flags, f"--screenshot={screenshot}", "--window-size=1300,1800", page.as_uri()]
                subprocess.run([chromium, *shot], capture_output=True, timeout=PAGE_TIMEOUT_S, check=True)
            done = subprocess.run(
                [chromium, *flags, "--dump-dom", page.as_uri()],
                capture_output=True,
                text=True,
                timeout=PAGE_TIMEOUT_S,
            )
        assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
        assert "<html" in done.stdout, f"chromium dumped no DOM: {done.stderr[-2000:]}"
        return done.stdout

    return dump
