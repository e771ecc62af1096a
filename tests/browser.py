"""A real headless browser for tests of rendered HTML: Debian's Chromium driven by Playwright.

    with browser_page(path) as page:
        assert page.errors == []            # console errors and uncaught exceptions, in order
        page.locator("svg").count()         # the Playwright page itself

`.ci/run` installs Chromium (Debian package `chromium`); CHROMIUM_PATH names another binary. Playwright's own
browser download is never used."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Flags for a closed network and a root user: no sandbox, no background connections, a fresh profile.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium found: install Debian's `chromium` (bash .ci/run does) or set CHROMIUM_PATH")
    return path


class _Page:
    """The Playwright page plus what the browser reported while loading and running it."""

    def __init__(self, page) -> None:
        self._page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        # Self-contained pages must not reach the network: any request off file:// is an error.
        page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("file:", "data:", "blob:"))
                else self.errors.append(f"request: {r.url}")
            ),
        )

    def __getattr__(self, name):
        return getattr(self._page, name)


@contextlib.contextmanager
def browser_page(html: Path, *, width: int = 1280, height: int = 900) -> Iterator[_Page]:
    """Open a local HTML file in headless Chromium, wait until it has loaded, and yield the page."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="referral-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=chromium_path(),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
            )
            try:
                page = _Page(context.new_page())
                page.goto(Path(html).resolve().as_uri(), wait_until="load")
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
