"""The interpret command: explain files and folders, write audio, pictures and report.html."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from interpreters.errors import InterpreterError
from interpreters.inference.interpreter import FileInterpretation, Interpreter
from interpreters.inference.report import write_html_report
from interpreters.listening import save_explanation_figure, write_sounds

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus"}


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files as given, folders searched recursively for audio; missing paths reported."""
    files, missing = [], []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            missing.append((path, f"{path} does not exist"))
    return files, missing


def interpret_inputs(
    source: str,
    inputs: list[str],
    out: str | Path,
    target: str | None = None,
    savedir: str | None = None,
    device: str = "cpu",
) -> tuple[int, list[tuple[Path, str]]]:
    """Explain every input; returns how many were done and the (path, reason) of the others."""
    out = Path(out)
    files, failed = expand_inputs(inputs)
    if not files:
        raise InterpreterError(f"no audio files found in {' '.join(inputs)}; give files or folders")
    interpreter = Interpreter.from_hparams(source, savedir, device)
    interpreter.check_target(target)
    entries = []
    for path in tqdm(files, desc="interpreting", unit="file", disable=len(files) < 2):
        try:
            result = interpreter.interpret_file(path, target)
        except InterpreterError as err:
            failed.append((path, str(err)))
            continue
        folder = out / unique_name(path, {e["name"] for e in entries})
        entries.append(save_result(result, folder, interpreter, out))
    write_html_report(out / "report.html", entries, failed, title=f"Interpretations by {source}")
    return len(entries), failed


def unique_name(path: Path, taken: set[str]) -> str:
    """A folder name for one input, unique within the report."""
    name, index = path.stem, 1
    while name in taken:
        index += 1
        name = f"{path.stem}_{index}"
    return name


def save_result(
    result: FileInterpretation, folder: Path, interpreter: Interpreter, out: Path
) -> dict:
    """Write one input's wavs and picture; return what the report shows about it."""
    rate = interpreter.sample_rate
    sounds = {"input": result.wav, "interpretation": result.interpretation}
    sounds["residual"] = result.residual
    write_sounds({kind: folder / f"{kind}.wav" for kind in sounds}, sounds, rate)
    save_explanation_figure(
        folder / "explanation.png",
        result.compressed,
        result.mask,
        title=f"{result.path.name}: explaining '{result.label}'",
        frame_rate=rate / interpreter.front_end.hop_length,
        max_freq=rate / 2,
    )
    top = result.probabilities.topk(min(5, len(interpreter.labels)))
    return {
        "name": folder.name,
        "file": str(result.path),
        "label": result.label,
        "audio": {kind: str((folder / f"{kind}.wav").relative_to(out)) for kind in sounds},
        "picture": str((folder / "explanation.png").relative_to(out)),
        "top": [(interpreter.labels[i], float(p)) for p, i in zip(top.values, top.indices)],
        "faithfulness": result.faithfulness,
    }
