"""What a listening test reads from a run folder: its data settings, the set's manifest and the
clips whose explanations the evaluation wrote (``examples/<set>/wav/<id>_<class>_<kind>.wav``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from interpreters.errors import InterpreterError

# The data settings that decide what the clips are; two runs on the same data agree on all of
# them (folder paths are left out: a generated set copied elsewhere is the same data).
DATA_KEYS = (
    "dataset",
    "sample_rate",
    "duration",
    "data_seed",
    "n_train_per_class",
    "n_valid_per_class",
    "n_test_per_class",
    "n_mixtures",
    "snr_range",
    "test_fold",
    "valid_fold",
    "split_ratios",
)


@dataclass(frozen=True)
class Clip:
    """One explained clip of a run: its id in the manifest, the class explained, its files."""

    uid: str
    label: str
    input: Path
    interpretation: Path


@dataclass(frozen=True)
class Run:
    """A run folder as a listening test sees it: its name, data settings and set manifest."""

    folder: Path
    name: str
    data: dict
    manifest: dict
    clips: dict[str, Clip]


class _TagTolerantLoader(yaml.SafeLoader):
    """Reads a resolved hyperparams.yaml without building anything: tagged nodes read as None."""


_TagTolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def read_data_section(folder: Path) -> dict | None:
    """The data section recorded in a run's hyperparams.yaml (training runs write one), or
    None when the run has none (evaluate-only runs)."""
    path = folder / "hyperparams.yaml"
    if not path.is_file():
        return None
    try:
        hparams = yaml.load(path.read_text(encoding="utf-8"), Loader=_TagTolerantLoader)
    except yaml.YAMLError as err:
        raise InterpreterError(
            f"{path} cannot be read as yaml ({err.__class__.__name__})"
        ) from None
    if not isinstance(hparams, dict):
        return None
    data = hparams.get("data")  # older runs keep the data keys at the top level
    data = data if isinstance(data, dict) and "data_folder" in data else hparams
    if not isinstance(data.get("data_folder"), str):
        return None
    record = {key: data[key] for key in (*DATA_KEYS, "data_folder") if key in data}
    record["output_folder"] = hparams.get("output_folder")
    return record


def base_folders(folder: Path, output_folder: str | None) -> list[Path]:
    """Where a run's relative paths may start: the folder it was launched from (found by
    removing its recorded output_folder from its path), then the current folder."""
    bases = []
    if output_folder and not os.path.isabs(output_folder):
        parts = Path(output_folder).parts
        resolved = folder.resolve()
        if len(resolved.parts) > len(parts) and resolved.parts[-len(parts) :] == parts:
            bases.append(Path(*resolved.parts[: -len(parts)]))
    bases.append(Path.cwd())
    return bases


def manifest_path(data: dict, data_folder: str, set_name: str) -> str:
    """The manifest of ``set_name`` under ``data_folder``, by the rule the recipes use."""
    from interpreters.data.datasets import default_prepared_folder, manifest_paths

    dataset = data.get("dataset", "synth")
    prepared = default_prepared_folder(
        dataset, data_folder, data.get("sample_rate") or 0, data.get("duration") or 0
    )
    return manifest_paths(dataset, prepared, (set_name,))[set_name]


def find_manifest(
    folder: Path, data: dict | None, set_name: str, data_folder: str | None
) -> tuple[dict, Path]:
    """(data settings, manifest path) of a run's set: from its recorded data folder, else from
    ``data_folder`` (--data_folder: the folder holding the manifests, ``<set>.json`` or
    ``ood/<set>.json``, e.g. data/synth); a one-line error saying what is missing."""
    tried = []
    if data is not None:
        recorded = data["data_folder"]
        for base in base_folders(folder, data.get("output_folder")):
            candidate = base / manifest_path(data, str(base / recorded), set_name)
            if str(candidate) in tried:
                continue
            tried.append(str(candidate))
            if candidate.is_file():
                return data, candidate
    if data_folder is not None:
        for candidate in (
            Path(data_folder) / f"{set_name}.json",
            Path(data_folder) / "ood" / f"{set_name}.json",
        ):
            tried.append(str(candidate))
            if candidate.is_file():
                return data or {}, candidate
    if data is None and data_folder is None:
        raise InterpreterError(
            f"run {folder} records no data folder (no hyperparams.yaml: evaluate-only runs do "
            "not write one); pass --data_folder, the data folder the run was evaluated on"
        )
    raise InterpreterError(
        f"no '{set_name}' manifest for run {folder} (looked for {', '.join(tried)}); pass "
        "--data_folder, the data folder the run was evaluated on"
    )


def read_manifest(path: Path) -> dict:
    """A SpeechBrain JSON manifest with ``{data_root}`` replaced by its folder."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InterpreterError(
            f"manifest {path} cannot be read ({err.__class__.__name__})"
        ) from None
    root = str(path.parent)
    for entry in manifest.values():
        for key, value in entry.items():
            if isinstance(value, str) and "{data_root}" in value:
                entry[key] = value.replace("{data_root}", root)
    return manifest


def list_clips(folder: Path, set_name: str, manifest: dict) -> dict[str, Clip]:
    """The clips of ``set_name`` whose input and interpretation the run wrote, by manifest id."""
    wav_folder = folder / "examples" / set_name / "wav"
    if not wav_folder.is_dir():
        raise InterpreterError(
            f"run {folder} has no examples of set '{set_name}' (no {wav_folder}); write them "
            f"with `recipes/evaluate.py hparams/<method>.yaml --output_folder={folder} "
            f"--n_examples=N` (eval_sets must include {set_name})"
        )
    by_length = sorted(manifest, key=len, reverse=True)
    clips = {}
    for path in sorted(wav_folder.glob("*_input.wav")):
        name = path.name[: -len("_input.wav")]
        uid = next((u for u in by_length if name.startswith(u + "_")), None)
        interpretation = wav_folder / f"{name}_interpretation.wav"
        if uid is None or not interpretation.is_file():
            continue
        clips[uid] = Clip(uid, name[len(uid) + 1 :], path, interpretation)
    return clips


def load_run(folder: str | Path, set_name: str, data_folder: str | None = None) -> Run:
    """A run folder with its data settings, its set's manifest and its explained clips."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InterpreterError(f"run folder {folder} does not exist")
    data, path = find_manifest(folder, read_data_section(folder), set_name, data_folder)
    manifest = read_manifest(path)
    clips = list_clips(folder, set_name, manifest)
    return Run(folder, folder.resolve().name, data, manifest, clips)


def has_stems(manifest: dict) -> bool:
    """Whether a set carries the true sources of its mixtures (stem1/stem2 with labels)."""
    return bool(manifest) and all(
        "stem1" in entry and "label1" in entry for entry in manifest.values()
    )


def target_stem(entry: dict, label: str) -> str | None:
    """The stem of the explained class in a mixture; None unless exactly one source is it
    (a decision that is neither source, or both sources of the same class, has no reference)."""
    hits = [i for i in (1, 2) if entry.get(f"label{i}") == label]
    return entry[f"stem{hits[0]}"] if len(hits) == 1 else None


def check_same_data(runs: list[Run]) -> None:
    """One line naming the first data setting two runs differ in, or saying that their
    manifests list different clips, if they do."""
    recorded = [run for run in runs if run.data]
    for run in recorded[1:]:
        first = recorded[0]
        for key in DATA_KEYS:  # settings an older run does not record are not compared
            if key in first.data and key in run.data and first.data[key] != run.data[key]:
                raise InterpreterError(
                    f"runs were made on different data: {first.folder} has {key} "
                    f"{json.dumps(first.data.get(key))}, {run.folder} has "
                    f"{json.dumps(run.data.get(key))}; build a test from runs on one data set"
                )
    manifests = [run.manifest for run in runs]
    if any(set(m) != set(manifests[0]) for m in manifests[1:]):
        raise InterpreterError(
            "runs were made on different data: their manifests list different clips; build a "
            "test from runs on one data set"
        )
