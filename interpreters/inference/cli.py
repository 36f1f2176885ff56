"""The interpret command: explain files and folders, write audio, pictures and report.html.

Each input gets a folder under ``--out`` named by its path relative to the folder it was found
in; the folder records which file it explains, so a later run (or one running at the same time)
never overwrites the results of another file, and report.html always lists everything in ``--out``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm import tqdm

from interpreters.data._io import write_json_atomic
from interpreters.errors import InterpreterError
from interpreters.inference.interpreter import FileInterpretation, Interpreter
from interpreters.inference.report import write_html_report
from interpreters.listening import save_explanation_figure, save_panels_image, write_sounds

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus"}
ENTRY_JSON = "entry.json"
SOUNDS = ("input", "interpretation", "residual")


def expand_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(file, name under --out) for files as given and folders searched recursively for audio;
    missing paths reported."""
    files, missing = [], []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            files += [(p, p.relative_to(path).with_suffix("")) for p in found]
        elif path.is_file():
            files.append((path, Path(path.stem)))
        else:
            missing.append((path, f"{path} does not exist"))
    return files, missing


def check_out(out: Path) -> None:
    """``--out`` must be a folder that exists or can be made: one line before any work, and
    nothing created yet (a run stopped on bad arguments leaves no folder behind)."""
    for folder in [out, *out.parents]:
        if not folder.exists():
            continue
        if not folder.is_dir():
            raise InterpreterError(
                f"--out {out}: {folder} is a file, not a folder; choose another --out"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InterpreterError(f"--out {out}: {folder} is not writable; choose another --out")
        return


def interpret_inputs(
    source: str,
    inputs: list[str],
    out: str | Path,
    target: str | None = None,
    savedir: str | None = None,
    device: str = "cpu",
    figures: bool = False,
    own_rate: bool = False,
    keep_above: bool = True,
) -> tuple[int, list[tuple[Path, str]], list[str]]:
    """Explain every input; returns how many were done, the (path, reason) of the others and
    notes about outputs placed beside or over earlier ones. ``figures``: full matplotlib figures
    with axes instead of the quick bare panels; ``own_rate``: sounds at each input's own rate,
    the band above the classifier's Nyquist kept in the interpretation or not (``keep_above``)."""
    out = Path(out)
    check_out(out)
    files, failed = expand_inputs(inputs)
    if not files:
        raise InterpreterError(f"no audio files found in {' '.join(inputs)}; give files or folders")
    interpreter = Interpreter.from_hparams(source, savedir, device)
    interpreter.check_target(target)
    done, notes = 0, []
    for path, name in tqdm(files, desc="interpreting", unit="file", disable=len(files) < 2):
        try:
            result = interpreter.interpret_file(path, target)
        except InterpreterError as err:
            failed.append((path, str(err)))
            continue
        folder, note = claim_folder(out, name, path)
        if note:
            notes.append(note)
        rate = write_file_sounds(interpreter, result, folder, own_rate, keep_above)
        entry = save_result(result, folder, interpreter, out, source, target, figures)
        entry.update(sample_rate=rate, above_nyquist=None if not own_rate else keep_above)
        write_json_atomic(folder / ENTRY_JSON, entry)
        done += 1
    write_html_report(
        out / "report.html", collect_entries(out), failed, title=f"Interpretations in {out}"
    )
    return done, failed, notes


def claim_folder(out: Path, name: Path, path: Path) -> tuple[Path, str | None]:
    """The folder for ``path``: ``name`` when free or already holding this file's results,
    otherwise ``name_2``, ``name_3``, ... (made atomically, so concurrent runs cannot share one);
    with a note when results are replaced or placed beside another file's."""
    wanted = str(path.resolve())
    candidate, index = out / name, 1
    while True:
        try:
            candidate.mkdir(parents=True)
            write_json_atomic(candidate / ENTRY_JSON, {"file": wanted})
            if index == 1:
                return candidate, None
            return (
                candidate,
                f"{path}: {out / name} holds another file's results; wrote {candidate}",
            )
        except FileExistsError:
            if explained_file(candidate) == wanted:
                return candidate, f"{path}: replaced its earlier results in {candidate}"
        index += 1
        candidate = out / name.parent / f"{name.name}_{index}"


def explained_file(folder: Path) -> str | None:
    """The input a result folder explains (None for a folder this command did not write)."""
    try:
        return json.loads((folder / ENTRY_JSON).read_text()).get("file")
    except (OSError, ValueError, AttributeError):
        return None


def collect_entries(out: Path) -> list[dict]:
    """Every explained input under ``out`` (from this run and earlier ones), sorted by name."""
    entries = []
    for path in sorted(out.rglob(ENTRY_JSON)):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if "audio" in entry:  # a folder claimed by a run still writing has no results yet
            entries.append(entry)
    return entries


def write_file_sounds(
    interpreter: Interpreter,
    result: FileInterpretation,
    folder: Path,
    own_rate: bool,
    keep_above: bool,
) -> int:
    """Write input, interpretation and residual at the classifier's rate or the input's own
    (``own_rate``); returns the rate written."""
    if own_rate:
        sounds, rate = interpreter.at_own_rate(result, keep_above)
    else:
        sounds, rate = result.sounds(), interpreter.sample_rate
    write_sounds({kind: folder / f"{kind}.wav" for kind in sounds}, sounds, rate)
    return rate


def save_result(
    result: FileInterpretation,
    folder: Path,
    interpreter: Interpreter,
    out: Path,
    source: str,
    target: str | None = None,
    figures: bool = False,
) -> dict:
    """Write one input's picture; return what the report shows about it (its sounds are
    written by the caller, at the rate asked for)."""
    rate = interpreter.sample_rate
    if figures:
        save_explanation_figure(
            folder / "explanation.png",
            result.compressed,
            result.mask,
            title=f"{result.path.name}: explaining '{result.label}'",
            frame_rate=rate / interpreter.front_end.hop_length,
            max_freq=rate / 2,
        )
    else:
        save_panels_image(folder / "explanation.png", result.compressed, result.mask)
    top = result.probabilities.topk(min(5, len(interpreter.labels)))
    return {
        "name": str(folder.relative_to(out)),
        "file": str(result.path.resolve()),
        "source": str(source),
        "label": result.label,
        "asked": target,  # None: the decision was explained
        "audio": {kind: str((folder / f"{kind}.wav").relative_to(out)) for kind in SOUNDS},
        "picture": str((folder / "explanation.png").relative_to(out)),
        "picture_axes": None if figures else [len(result.wav) / rate, rate / 2],
        "top": [(interpreter.labels[i], float(p)) for p, i in zip(top.values, top.indices)],
        "faithfulness": result.faithfulness,
    }
