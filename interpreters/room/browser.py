"""Headless Chromium through playwright, on the system's browser (Debian's chromium): used by the
browser tests and by the commands that make the README's screenshots."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from interpreters.errors import InterpreterError

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """The system's chromium executable, or a one-line error saying how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise InterpreterError("no chromium found: install it with `make apt-test` (Debian's chromium)")


@contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator:
    """A fresh page in headless Chromium; ``page.console_errors`` collects console errors."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise InterpreterError(
            "playwright is not installed: run `make setup` (requirements-dev.txt)"
        ) from err
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.console_errors = []
            page.on(
                "console",
                lambda message: (
                    page.console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: page.console_errors.append(str(error)))
            yield page
        finally:
            browser.close()
