"""Build a blind listening test from runs' examples: the same clips drawn from every run (by
seed), each trial's sounds in random order under neutral names, the key kept apart."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from interpreters.data._io import write_json_atomic
from interpreters.errors import InterpreterError
from interpreters.room.listening.runs import (
    Run,
    check_same_data,
    has_stems,
    load_run,
    target_stem,
)
from interpreters.room.listening.store import AUDIO_FOLDER, FORMAT, KEY_FILE, MODES, TEST_FILE

HIDDEN_REFERENCE = "hidden reference"
ANCHOR = "anchor"
SOUND_NAMES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def usable_clips(runs: list[Run], stems: bool) -> tuple[list[str], dict[str, int]]:
    """Clip ids every run explained for the same class (and, on sets with stems, whose class is
    exactly one of the two sources), sorted; and how many were left out for which reason."""
    shared = set.intersection(*(set(run.clips) for run in runs))
    left_out = {"not in every run": len(set.union(*(set(run.clips) for run in runs))) - len(shared)}
    agreed = {uid for uid in shared if len({run.clips[uid].label for run in runs}) == 1}
    left_out["runs explain different classes"] = len(shared) - len(agreed)
    if stems:
        manifest = runs[0].manifest
        sourced = {uid for uid in agreed if target_stem(manifest[uid], runs[0].clips[uid].label)}
        left_out["class is not exactly one source"] = len(agreed) - len(sourced)
        agreed = sourced
    return sorted(agreed), {reason: n for reason, n in left_out.items() if n}


def not_enough(runs: list[Run], set_name: str, found: int, n: int, left_out: dict) -> str:
    """The one-line error when the runs share fewer usable clips than asked, with the fix."""
    counts = ", ".join(f"{run.name} {len(run.clips)}" for run in runs)
    reasons = "; ".join(f"{k}: {v}" for k, v in left_out.items()) or "none left out"
    more = max(2 * max(len(run.clips) for run in runs), 2 * n)
    return (
        f"the runs share {found} usable '{set_name}' clips, {n} asked (examples per run: {counts};"
        f" {reasons}); write more with `recipes/evaluate.py hparams/<method>.yaml "
        f"--output_folder=<a copy of the run> --n_examples={more}` or ask for --n {found}"
    )


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples and rate of a wav, as float32."""
    samples, rate = sf.read(str(path), dtype="float32")
    return samples, rate


def check_same_inputs(runs: list[Run], uids: list[str]) -> None:
    """The drawn clips must sound the same in every run, or the runs used different data."""
    for uid in uids:
        first, rate = read_wav(runs[0].clips[uid].input)
        for run in runs[1:]:
            other, other_rate = read_wav(run.clips[uid].input)
            if (
                other_rate != rate
                or other.shape != first.shape
                or np.abs(other - first).max() > 1e-5
            ):
                raise InterpreterError(
                    f"runs were made on different data: clip {uid} differs between "
                    f"{runs[0].folder} and {run.folder}; build a test from runs on one data set"
                )


def distinct_names(folders: list[Path]) -> list[str]:
    """Each folder's name, with as many parent folders as it takes to tell them apart."""
    parts = [folder.resolve().parts for folder in folders]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return names


def method_names(runs: list[Run], names: list[str] | None) -> list[str]:
    """The name of each run's condition in the key and the analysis: --names, else the run
    folders' names (with parents where two folders share a name)."""
    chosen = list(names) if names else distinct_names([run.folder for run in runs])
    if len(chosen) != len(runs):
        raise InterpreterError(f"--names gives {len(chosen)} names for {len(runs)} runs")
    if len(set(chosen)) != len(chosen) or {HIDDEN_REFERENCE, ANCHOR} & set(chosen):
        raise InterpreterError(
            f"condition names must be distinct and not '{HIDDEN_REFERENCE}'/'{ANCHOR}' (got "
            f"{', '.join(chosen)}); name the runs with --names"
        )
    return chosen


def mushra_conditions(runs, methods, uid, stem: str | None) -> dict[str, Path]:
    """Every condition of one MUSHRA trial: the methods, and with stems the hidden reference
    (the true stem) and the anchor (the mixture itself)."""
    conditions = {name: run.clips[uid].interpretation for name, run in zip(methods, runs)}
    if stem is not None:
        conditions[HIDDEN_REFERENCE] = Path(stem)
        conditions[ANCHOR] = runs[0].clips[uid].input
    return conditions


def lay_out_trial(
    rng: np.random.Generator, trial_id: str, conditions: dict[str, Path], shown: dict[str, Path]
) -> tuple[dict, dict, dict[Path, Path]]:
    """One trial in random order under neutral names: (what the page shows, its key, the copies
    to make as {destination under the test folder: source})."""
    order = [list(conditions)[i] for i in rng.permutation(len(conditions))]
    folder = Path(AUDIO_FOLDER) / trial_id
    copies = {folder / f"{kind}.wav": path for kind, path in shown.items()}
    sounds, key = [], {}
    for name, condition in zip(SOUND_NAMES, order):
        copies[folder / f"{name}.wav"] = conditions[condition]
        sounds.append({"name": name, "file": str(folder / f"{name}.wav")})
        key[name] = condition
    page = {"id": trial_id, "sounds": sounds}
    page.update({kind: str(folder / f"{kind}.wav") for kind in shown})
    return page, {"sounds": key}, copies


def draw_trials(
    runs: list[Run],
    methods: list[str],
    uids: list[str],
    mode: str,
    stems: bool,
    rng: np.random.Generator,
) -> tuple[list[dict], dict, dict[Path, Path]]:
    """Pick the trials' order and the sounds' order of each: pages, key, copies to make."""
    manifest = runs[0].manifest
    plans = []
    for uid in uids:
        label = runs[0].clips[uid].label
        stem = target_stem(manifest[uid], label) if stems else None
        shown = {"reference": Path(stem)} if stem else {"input": runs[0].clips[uid].input}
        if mode == "mushra":
            plans.append((uid, label, mushra_conditions(runs, methods, uid, stem), shown))
            continue
        if stem:
            shown["input"] = runs[0].clips[uid].input
        for (name_a, run_a), (name_b, run_b) in itertools.combinations(zip(methods, runs), 2):
            pair = {
                name_a: run_a.clips[uid].interpretation,
                name_b: run_b.clips[uid].interpretation,
            }
            plans.append((uid, label, pair, shown))
    pages, key, copies = [], {}, {}
    width = max(2, len(str(len(plans))))
    for number, index in enumerate(rng.permutation(len(plans)), start=1):
        uid, label, conditions, shown = plans[index]
        trial_id = f"t{number:0{width}d}"
        page, trial_key, trial_copies = lay_out_trial(rng, trial_id, conditions, shown)
        pages.append({**page, "label": label})
        key[trial_id] = {
            **trial_key,
            "clip": uid,
            "label": label,
            "metric_reference": page.get("reference") or page["input"],
        }
        copies.update(trial_copies)
    return pages, key, copies


def question(mode: str, stems: bool) -> str:
    """What listeners are asked, shown above every trial (``{label}``: the explained class)."""
    if mode == "mushra" and stems:
        return (
            "Rate how close each sound is to the reference (the true '{label}' sound): 100 = "
            "indistinguishable, 0 = nothing alike. One of the sounds is the reference itself; "
            "rate it 100."
        )
    if mode == "mushra":
        return (
            "Rate how well each sound keeps the '{label}' sound of the input, and only it: "
            "100 = perfectly, 0 = not at all."
        )
    if stems:
        return "Which sound is closer to the reference (the true '{label}' sound)?"
    return "Which sound keeps the '{label}' sound of the input, and only it, better?"


def check_out_folder(out: Path) -> None:
    """A test is written into a new or empty folder only: nothing is overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InterpreterError(f"{out} already exists and is not empty; pick another --out")


def build_test(
    runs: list[str | Path],
    out: str | Path,
    set_name: str = "mixtures",
    n: int = 20,
    mode: str = "mushra",
    seed: int = 0,
    names: list[str] | None = None,
    data_folder: str | None = None,
) -> Path:
    """Write a self-contained blind test of ``n`` clips shared by ``runs`` into ``out``; its
    test.json path. Same runs and seed, same test."""
    if mode not in MODES:
        raise InterpreterError(f"mode {mode!r} is unknown; use one of {', '.join(MODES)}")
    if len(runs) < (2 if mode == "ab" else 1) or n < 1:
        raise InterpreterError("an A/B test needs two runs or more and --n of at least 1")
    out = Path(out)
    check_out_folder(out)
    loaded = [load_run(folder, set_name, data_folder) for folder in runs]
    methods = method_names(loaded, names)
    check_same_data(loaded)
    stems = has_stems(loaded[0].manifest)
    uids, left_out = usable_clips(loaded, stems)
    if len(uids) < n:
        raise InterpreterError(not_enough(loaded, set_name, len(uids), n, left_out))
    rng = np.random.default_rng(seed)
    drawn = sorted(uids[i] for i in rng.choice(len(uids), n, replace=False))
    check_same_inputs(loaded, drawn)
    pages, key, copies = draw_trials(loaded, methods, drawn, mode, stems, rng)
    for destination, source in copies.items():
        (out / destination).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / destination)
    test = {
        "format": FORMAT,
        "mode": mode,
        "set": set_name,
        "seed": seed,
        "question": question(mode, stems),
        "trials": pages,
    }
    test_id = hashlib.sha256(json.dumps(test, sort_keys=True).encode()).hexdigest()[:16]
    test = {"id": test_id, **test}
    conditions = methods + ([HIDDEN_REFERENCE, ANCHOR] if stems and mode == "mushra" else [])
    write_json_atomic(
        out / KEY_FILE,
        {
            "id": test_id,
            "methods": methods,
            "conditions": conditions,
            "runs": {name: str(run.folder.resolve()) for name, run in zip(methods, loaded)},
            "metric_reference": "true stem" if stems else "input",
            "trials": key,
        },
    )
    write_json_atomic(out / TEST_FILE, test)
    return out / TEST_FILE
