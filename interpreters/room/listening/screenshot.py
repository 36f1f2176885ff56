"""Drive one trial of a test in headless Chromium and save the page as a PNG: the command that
makes the README's picture, run on a copy of the test so that its answers stay untouched."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from interpreters.errors import InterpreterError
from interpreters.room.listening.store import ANSWERS_FOLDER, load_answers, load_test

SCREENSHOT_LISTENER = "screenshot"


def open_test(page, url: str, listener: str) -> None:
    """Load the test page, give the listener's name and wait for their next trial (or the
    thank-you page)."""
    page.goto(url)
    page.get_by_label("Your name or listener id").fill(listener)
    page.get_by_role("button", name="Start").click()
    page.get_by_text(re.compile(r"Trial \d+ of \d+|Thank you")).first.wait_for()


SOUNDS_READY = """() => {
    const players = [...document.querySelectorAll('audio')].filter(a => a.offsetParent);
    return players.length > 0 && players.every(a => a.duration > 0);
}"""


def wait_for_sounds(page) -> None:
    """Wait until every audio player on the page has loaded its sound (its length known)."""
    page.wait_for_function(SOUNDS_READY, timeout=30_000)


def answer_trial(page, test: dict, index: int, ratings: list[float] | None = None) -> None:
    """Rate (MUSHRA: type each rating in its box) or choose (A/B: the first sound) one trial,
    without submitting it."""
    sounds = test["trials"][index]["sounds"]
    if test["mode"] == "ab":
        page.get_by_label(sounds[0]["name"], exact=True).check()
        return
    ratings = ratings or [100 - 15 * i for i in range(len(sounds))]
    for sound, rating in zip(sounds, ratings):
        box = page.get_by_label(f"number input for Rating of Sound {sound['name']}")
        box.fill(str(int(rating)))
        box.blur()


def submit_trial(page, index: int, total: int) -> None:
    """Save the trial and wait for the next one (or the thank-you page)."""
    page.get_by_role("button", name="Save and continue").click()
    following = f"Trial {index + 2} of {total}" if index + 1 < total else "Thank you"
    page.get_by_text(following).first.wait_for()


def take_screenshot(folder: str | Path, path: str | Path, width: int = 1280) -> Path:
    """Serve a copy of the test, rate its first trial in headless Chromium, save the page as a
    PNG at ``path``, then submit and check the answer reached the copy's answers file."""
    from interpreters.room.browser import browser_page
    from interpreters.room.listening.serve import launch

    test = load_test(folder)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="listening_test_") as scratch:
        copy = Path(scratch) / "test"
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(ANSWERS_FOLDER))
        app = launch(copy, block=False)
        try:
            with browser_page(width=width, height=900) as page:
                open_test(page, app.local_url, SCREENSHOT_LISTENER)
                wait_for_sounds(page)
                answer_trial(page, test, 0)
                page.wait_for_timeout(300)  # let the sliders follow the typed ratings
                page.screenshot(path=str(path), full_page=True)
                submit_trial(page, 0, len(test["trials"]))
                errors = list(page.console_errors)
        finally:
            app.close()
        if test["trials"][0]["id"] not in load_answers(copy, test, SCREENSHOT_LISTENER)["answers"]:
            raise InterpreterError("the driven trial's answer was not saved; see the server log")
    if errors:
        raise InterpreterError(f"the page logged errors in the browser: {errors[0]}")
    return path
