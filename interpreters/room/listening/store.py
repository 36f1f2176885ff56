"""A listening test on disk: test.json (what the page shows), key.json (which method each blind
sound is; never served), audio/ (copies, so the folder is self-contained) and answers/, one JSON
file per listener, written atomically after every trial and never overwritten by another."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

from interpreters.data._io import write_json_atomic
from interpreters.errors import InterpreterError

TEST_FILE = "test.json"
KEY_FILE = "key.json"
AUDIO_FOLDER = "audio"
ANSWERS_FOLDER = "answers"
FORMAT = 1
MODES = ("mushra", "ab")
LISTENER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_lock = threading.Lock()  # one read-modify-write of an answers file at a time per process


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``, or a one-line error naming ``what`` it should be."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InterpreterError(f"{path} does not exist: {what}") from None
    except (OSError, ValueError) as err:
        raise InterpreterError(
            f"{path} cannot be read ({err.__class__.__name__}): {what}"
        ) from None
    if not isinstance(value, dict):
        raise InterpreterError(f"{path} is not a JSON object: {what}")
    return value


def load_test(folder: str | Path) -> dict:
    """test.json of a test folder, checked for the format this code writes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InterpreterError(f"test folder {folder} does not exist; make one with `build`")
    test = read_json(folder / TEST_FILE, "not a test folder made by `listening_test.py build`")
    if test.get("format") != FORMAT or test.get("mode") not in MODES or not test.get("trials"):
        raise InterpreterError(f"{folder / TEST_FILE} is not a listening test of format {FORMAT}")
    return test


def load_key(folder: str | Path) -> dict:
    """key.json of a test folder: per trial and blind sound, the condition it is."""
    return read_json(Path(folder) / KEY_FILE, "the test's key is missing; rebuild the test")


def listener_id(name: str) -> str:
    """A listener's name as the id of their answers file; names that are not plain (letters,
    digits, '-', '_', '.'; no path) are refused rather than changed, so two names never share
    a file."""
    name = (name or "").strip()
    if not LISTENER_PATTERN.fullmatch(name) or ".." in name:
        raise InterpreterError(
            f"listener name {name!r} is not usable: use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


def answers_path(folder: str | Path, listener: str) -> Path:
    """The answers file of one listener (the name checked first)."""
    return Path(folder) / ANSWERS_FOLDER / f"{listener_id(listener)}.json"


def load_answers(folder: str | Path, test: dict, listener: str) -> dict:
    """A listener's answers so far (an empty record for a new listener); refuses a file that
    belongs to another test."""
    path = answers_path(folder, listener)
    if not path.is_file():
        return {"listener": listener_id(listener), "test": test["id"], "answers": {}}
    record = read_json(path, "a listener's answers file")
    if record.get("test") != test["id"] or not isinstance(record.get("answers"), dict):
        raise InterpreterError(f"{path} holds answers to another test; move it out of {folder}")
    return record


def next_trial(test: dict, record: dict) -> int | None:
    """Index of the first trial this listener has not answered; None when all are done."""
    done = record["answers"]
    return next((i for i, trial in enumerate(test["trials"]) if trial["id"] not in done), None)


def check_answer(test: dict, trial: dict, answer: dict) -> dict:
    """The answer in the form stored: MUSHRA ratings 0-100 for every sound, or an A/B choice."""
    names = [sound["name"] for sound in trial["sounds"]]
    if test["mode"] == "mushra":
        ratings = answer.get("ratings", {})
        if sorted(ratings) != sorted(names):
            raise InterpreterError(f"trial {trial['id']}: rate every sound ({', '.join(names)})")
        values = {name: float(ratings[name]) for name in names}
        if any(not 0 <= value <= 100 for value in values.values()):
            raise InterpreterError(f"trial {trial['id']}: ratings must lie in 0-100")
        return {"ratings": values}
    if answer.get("choice") not in names:
        raise InterpreterError(f"trial {trial['id']}: choose one of {', '.join(names)}")
    return {"choice": answer["choice"]}


def record_answer(
    folder: str | Path, test: dict, listener: str, trial_id: str, answer: dict
) -> bool:
    """Add one trial's answer to the listener's file (atomically); an answer already there is
    kept, never replaced. True when this answer was written."""
    trials = {trial["id"]: trial for trial in test["trials"]}
    if trial_id not in trials:
        raise InterpreterError(f"trial {trial_id} is not in this test")
    stored = check_answer(test, trials[trial_id], answer)
    path = answers_path(folder, listener)
    with _lock:
        record = load_answers(folder, test, listener)
        if trial_id in record["answers"]:
            return False
        stored["saved"] = datetime.now(UTC).isoformat(timespec="seconds")
        record["answers"][trial_id] = stored
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, record)
    return True


def all_answers(folder: str | Path, test: dict) -> dict[str, dict]:
    """Every listener's answers, by listener id; a one-line error when there are none."""
    folder = Path(folder)
    paths = sorted((folder / ANSWERS_FOLDER).glob("*.json"))
    records = {}
    for path in paths:
        record = read_json(path, "a listener's answers file")
        if record.get("test") != test["id"]:
            raise InterpreterError(f"{path} holds answers to another test; move it out of {folder}")
        if record.get("answers"):
            records[path.stem] = record
    if not records:
        raise InterpreterError(
            f"no answers in {folder / ANSWERS_FOLDER}: run `listening_test.py serve {folder}` and "
            "have listeners take the test first"
        )
    return records
