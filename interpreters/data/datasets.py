"""One dataset switch for every recipe yaml: ``dataset`` + ``data_folder`` -> JSON manifests.

``synth`` and ``instruments`` are generated; ``esc50``, ``urbansound8k`` and ``audiomnist`` are
the public sets already on disk; ``folder`` (one sub-folder per class) and ``csv`` (rows
path,label[,split]) are the user's own files. Files on disk are converted ONCE into
``prepared_folder`` (mono, resampled, padded/cropped wavs + manifests whose paths start with
``{data_root}`` = prepared_folder); a config file there makes a re-run with the same settings
reuse it and a run with other settings stop instead of overwriting it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from interpreters.audio import load_audio
from interpreters.data._io import check_existing, ensure_writable, write_json_atomic
from interpreters.errors import InterpreterError

logger = logging.getLogger(__name__)

DATASETS = ("synth", "instruments", "esc50", "urbansound8k", "audiomnist", "folder", "csv")
GENERATED = ("synth", "instruments")  # made by a generator, in prepared_folder itself
SPLITS = ("train", "valid", "test")
CONFIG_NAME = "prepared_config.json"
OOD_SUBFOLDER = "ood"
_NATIVE = {"synth": ("mixtures",), "instruments": ("mixtures",)}  # OOD sets a generator makes
_VERSION = 1  # bump when the conversion changes, so older prepared folders are not reused

_LAYOUTS = {
    "esc50": (
        "ESC-50",
        "meta/esc50.csv + audio/*.wav",
        "https://github.com/karolpiczak/ESC-50",
    ),
    "urbansound8k": (
        "UrbanSound8K",
        "metadata/UrbanSound8K.csv + audio/foldN/*.wav",
        "https://urbansounddataset.weebly.com/urbansound8k.html",
    ),
    "audiomnist": (
        "AudioMNIST",
        "data/NN/D_NN_K.wav (digit_speaker_index)",
        "https://github.com/soerenab/AudioMNIST",
    ),
}
_N_FOLDS = {"esc50": 5, "urbansound8k": 10}
_AUDIOMNIST_NAME = re.compile(r"^(\d)_(\d+)_(\d+)\.wav$")
_AUDIO_SUFFIXES = {f".{name.lower()}" for name in sf.available_formats()} | {
    ".aif",
    ".oga",
    ".opus",
}
_SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid"}
_SPLIT_NAMES |= {"validation": "valid", "test": "test", "eval": "test"}


@dataclass
class _Item:
    """One source file to convert: where it is, its class, its split and its manifest id."""

    source: Path
    label: str
    split: str
    item_id: str


# ---------------------------------------------------------------------------------------------
# Names the yaml uses
# ---------------------------------------------------------------------------------------------


def manifest_paths(
    dataset: str, prepared_folder: str, names: Sequence[str], ood_sets: Sequence[str] = ()
) -> dict[str, str]:
    """{set name: manifest path} for ``names`` then ``ood_sets``: the one rule both the yaml
    ``manifests:`` and prepare_dataset follow. Sets the dataset does not make itself are built
    by interpreters.data.ood under <prepared_folder>/ood/."""
    _check_name(dataset)
    folder = os.fspath(prepared_folder)
    paths = {}
    for name in dict.fromkeys([*names, *(ood_sets or ())]):
        own = name in SPLITS or name in _NATIVE.get(dataset, ())
        paths[name] = os.path.join(
            folder, f"{name}.json" if own else f"{OOD_SUBFOLDER}/{name}.json"
        )
    return paths


def default_prepared_folder(
    dataset: str, data_folder: str, sample_rate: int, duration: float, root: str = "data/prepared"
) -> str:
    """Where a dataset is converted: data_folder itself for generated sets, else one folder per
    (dataset, data_folder, rate, length) under ``root``, so other settings never share one."""
    _check_name(dataset)
    if dataset in GENERATED:
        return os.fspath(data_folder)
    source = os.path.abspath(os.fspath(data_folder))
    digest = hashlib.sha1(source.encode()).hexdigest()[:8]
    return os.path.join(root, f"{dataset}_{int(sample_rate)}hz_{float(duration):g}s_{digest}")


def dataset_labels(dataset: str, data_folder: str) -> list[str]:
    """Class names in output order, read cheaply from the layout (no audio is opened)."""
    _check_name(dataset)
    if dataset == "synth":
        from interpreters.data.synth import class_names

        return class_names()
    if dataset == "instruments":
        from interpreters.data.instruments import class_names

        return class_names()
    if dataset == "audiomnist":
        return [str(digit) for digit in range(10)]
    if dataset == "folder":
        return _class_folders(Path(data_folder))
    if dataset == "csv":
        return sorted({row[1] for row in _read_own_csv(Path(data_folder))})
    rows = _read_meta(dataset, Path(data_folder))
    return _indexed_labels(dataset, data_folder, rows)


# ---------------------------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------------------------


def prepare_dataset(
    dataset: str,
    data_folder: str,
    prepared_folder: str,
    sample_rate: int,
    duration: float,
    seed: int,
    ood_sets: Sequence[str] = (),
    speech_folder: str | None = None,
    noise_folder: str | None = None,
    **options,
) -> dict[str, str]:
    """Make (or reuse) ``dataset``'s manifests in ``prepared_folder``; {set name: path}.

    Options: n_train_per_class, n_valid_per_class, n_test_per_class, n_mixtures, snr_range,
    soundfont (generated sets, made in prepared_folder; n_mixtures also sizes the OOD sets),
    test_fold, valid_fold (esc50, urbansound8k), split_ratios (audiomnist speakers, folder, csv
    without a split column).
    """
    _check_name(dataset)
    prepared_folder = os.fspath(prepared_folder)
    ood_sets = list(ood_sets or ())
    if dataset in GENERATED:
        manifests = _generator(dataset)(
            prepared_folder,
            **_pick(options, "n_train_per_class", "n_valid_per_class", "n_test_per_class"),
            **_pick(options, "n_mixtures", "snr_range", *(("soundfont",) * (dataset != "synth"))),
            duration=duration,
            sample_rate=sample_rate,
            seed=seed,
        )
    else:
        manifests = _prepare_files(
            dataset, Path(data_folder), prepared_folder, sample_rate, duration, seed, options
        )
    missing = [kind for kind in ood_sets if kind not in manifests]
    if missing:
        manifests.update(
            _prepare_ood(
                dataset,
                prepared_folder,
                sample_rate,
                seed,
                missing,
                speech_folder,
                noise_folder,
                options.get("n_mixtures"),
            )
        )
    return manifests


def _prepare_files(
    dataset: str,
    data_folder: Path,
    prepared_folder: str,
    sample_rate: int,
    duration: float,
    seed: int,
    options: dict,
) -> dict[str, str]:
    """Convert a dataset on disk once: list and check it, then resample/pad/crop every file."""
    if sample_rate < 1000 or duration < 0.05:
        raise InterpreterError(
            f"sample_rate >= 1000 and duration >= 0.05 s needed, got {sample_rate}, {duration}"
        )
    split_options = _split_options(dataset, options)
    config = {
        "dataset": dataset,
        "data_folder": os.path.abspath(data_folder),
        "sample_rate": int(sample_rate),
        "duration": float(duration),
        **split_options,
        "version": _VERSION,
    }
    if dataset in ("audiomnist", "folder", "csv"):
        config["seed"] = int(seed)
    manifests = manifest_paths(dataset, prepared_folder, SPLITS)
    if _reuse(prepared_folder, config, manifests):
        logger.info("%s already prepared in %s, reusing it", dataset, prepared_folder)
        return manifests
    items = _LISTERS[dataset](data_folder, seed=seed, **split_options)
    for split in SPLITS:
        if not any(item.split == split for item in items):
            raise InterpreterError(
                f"{dataset} at {data_folder}: the {split} split is empty; add files or change "
                "test_fold / valid_fold / split_ratios"
            )
    ensure_writable(prepared_folder)
    write_json_atomic(os.path.join(prepared_folder, CONFIG_NAME), config)
    entries = _convert(items, prepared_folder, sample_rate, duration)
    for split, path in manifests.items():  # last: their presence marks a finished preparation
        write_json_atomic(path, entries[split])
    counts = {split: len(entries[split]) for split in SPLITS}
    logger.info("%s prepared in %s: %s", dataset, prepared_folder, counts)
    return manifests


def _reuse(prepared_folder: str, config: dict, manifests: dict[str, str]) -> bool:
    """True if ``prepared_folder`` holds this exact preparation; raise if it holds another
    (anything already in a folder without our config counts as another's)."""
    owned = os.listdir(prepared_folder) if os.path.isdir(prepared_folder) else []
    return check_existing(
        prepared_folder,
        config,
        manifests,
        CONFIG_NAME,
        owned,
        "prepare_dataset",
        remedy="pick another prepared_folder or delete that one",
        key="prepared_folder",
    )


def _convert(
    items: list[_Item], prepared_folder: str, sample_rate: int, duration: float
) -> dict[str, dict]:
    """Write every item mono, at ``sample_rate``, exactly ``duration`` long; manifest entries."""
    n_samples = round(duration * sample_rate)
    entries: dict[str, dict] = {split: {} for split in SPLITS}
    for split in SPLITS:
        os.makedirs(os.path.join(prepared_folder, split), exist_ok=True)
    for item in tqdm(items, desc="preparing audio", unit="file"):
        wav = fit_length(
            load_audio(item.source, sample_rate, resample=True, downmix=True), n_samples
        )
        relative = f"{item.split}/{item.item_id}.wav"
        signal = np.clip(wav.numpy(), -1.0, 1.0)
        sf.write(os.path.join(prepared_folder, relative), signal, sample_rate, subtype="PCM_16")
        entries[item.split][item.item_id] = {
            "wav": f"{{data_root}}/{relative}",
            "label": item.label,
            "duration": n_samples / sample_rate,
            "source": str(item.source),
        }
    return entries


def fit_length(wav: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Zero-pad at the end, or crop to the ``n_samples`` window holding the most energy (so a
    short event in a long recording is kept); deterministic."""
    if len(wav) <= n_samples:
        return torch.nn.functional.pad(wav, (0, n_samples - len(wav)))
    energy = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.float64), wav.double() ** 2]), 0)
    hop = max(1, n_samples // 50)
    starts = torch.arange(0, len(wav) - n_samples + 1, hop)
    start = int(starts[torch.argmax(energy[starts + n_samples] - energy[starts])])
    return wav[start : start + n_samples]


def _prepare_ood(
    dataset: str,
    prepared_folder: str,
    sample_rate: int,
    seed: int,
    kinds: list[str],
    speech_folder: str | None,
    noise_folder: str | None,
    n_items: int | None,
) -> dict[str, str]:
    """Contaminated sets drawn from the test split (built once by interpreters.data.ood)."""
    from interpreters.data.ood import build_ood_sets

    expected = manifest_paths(dataset, prepared_folder, [], kinds)
    built = build_ood_sets(
        manifest_paths(dataset, prepared_folder, ["test"])["test"],
        prepared_folder,
        sample_rate,
        seed,
        kinds,
        speech_folder=speech_folder,
        noise_folder=noise_folder,
        n_items=n_items,
        subfolder=OOD_SUBFOLDER,
    )
    if any(os.path.normpath(built[k]) != os.path.normpath(expected[k]) for k in kinds):
        raise RuntimeError(f"build_ood_sets wrote {built}, manifest_paths says {expected}")
    return expected


# ---------------------------------------------------------------------------------------------
# Listing each layout: which file, which class, which split
# ---------------------------------------------------------------------------------------------


def _split_options(dataset: str, options: dict) -> dict:
    """The split settings that matter for ``dataset``, with the standard defaults filled in."""
    if dataset in _N_FOLDS:
        n_folds = _N_FOLDS[dataset]
        test_fold = options.get("test_fold") or n_folds
        valid_fold = options.get("valid_fold") or (test_fold - 2) % n_folds + 1
        for key, fold in (("test_fold", test_fold), ("valid_fold", valid_fold)):
            if not 1 <= int(fold) <= n_folds:
                raise InterpreterError(f"{key} {fold} is not a {dataset} fold (1..{n_folds})")
        if test_fold == valid_fold:
            raise InterpreterError(f"test_fold and valid_fold are both {test_fold}; pick two")
        return {"test_fold": int(test_fold), "valid_fold": int(valid_fold)}
    ratios = options.get("split_ratios") or (0.8, 0.1, 0.1)
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0:
        raise InterpreterError(
            f"split_ratios {list(ratios)} must be [train, valid, test] fractions, train > 0"
        )
    total = float(sum(ratios))
    return {"split_ratios": [float(r) / total for r in ratios]}


def _layout_error(dataset: str, data_folder: Path, problem: str) -> InterpreterError:
    """The one-line message for a missing or wrongly laid out public dataset."""
    name, layout, url = _LAYOUTS[dataset]
    return InterpreterError(
        f"{name} data_folder {data_folder}: {problem}; expected {layout} inside it "
        f"(get it from {url})"
    )


def _read_meta(dataset: str, data_folder: Path) -> list[dict]:
    """Rows of ESC-50's or UrbanSound8K's metadata CSV, checking the columns we need."""
    relative, columns = {
        "esc50": ("meta/esc50.csv", ("filename", "fold", "target", "category")),
        "urbansound8k": (
            "metadata/UrbanSound8K.csv",
            ("slice_file_name", "fold", "classID", "class"),
        ),
    }[dataset]
    path = data_folder / relative
    if not path.is_file():
        raise _layout_error(dataset, data_folder, f"{relative} not found")
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise _layout_error(dataset, data_folder, f"{relative} lacks columns {missing}")
        rows = list(reader)
    if not rows:
        raise _layout_error(dataset, data_folder, f"{relative} lists no files")
    for number, row in enumerate(rows, start=2):
        for key in columns[1:3]:  # fold and class index
            if not row[key].strip().isdigit():
                raise _layout_error(
                    dataset,
                    data_folder,
                    f"{relative} line {number}: {key} '{row[key]}' is no number",
                )
    return rows


def _indexed_labels(dataset: str, data_folder: str | Path, rows: list[dict]) -> list[str]:
    """Class names ordered by the dataset's own class index (ESC-50 target, US8K classID)."""
    index_key, name_key = ("target", "category") if dataset == "esc50" else ("classID", "class")
    names: dict[int, str] = {}
    for row in rows:
        index = int(row[index_key])
        if names.setdefault(index, row[name_key]) != row[name_key]:
            raise _layout_error(
                dataset,
                Path(data_folder),
                f"class index {index} is named both {names[index]} and {row[name_key]}",
            )
    return [names[index] for index in sorted(names)]


def _list_folds(dataset: str, data_folder: Path, test_fold: int, valid_fold: int) -> list[_Item]:
    """ESC-50 / UrbanSound8K: the metadata's folds give the splits, its classes the labels."""
    rows = _read_meta(dataset, data_folder)
    _indexed_labels(dataset, data_folder, rows)
    audio = data_folder / "audio"
    if not audio.is_dir():
        raise _layout_error(dataset, data_folder, "audio/ not found")
    items, absent = [], []
    for row in rows:
        fold = int(row["fold"])
        if dataset == "esc50":
            source, label = audio / row["filename"], row["category"]
        else:
            source, label = audio / f"fold{fold}" / row["slice_file_name"], row["class"]
        if not source.is_file():
            absent.append(source)
        split = "test" if fold == test_fold else "valid" if fold == valid_fold else "train"
        items.append(_Item(source, label, split, source.stem))
    if absent:
        raise _layout_error(
            dataset,
            data_folder,
            f"{len(absent)} listed audio files are missing, e.g. {absent[0]}",
        )
    return items


def _list_esc50(data_folder: Path, test_fold: int, valid_fold: int, **_) -> list[_Item]:
    """ESC-50: folds 1-3 train, 4 valid, 5 test by default."""
    return _list_folds("esc50", data_folder, test_fold, valid_fold)


def _list_urbansound8k(data_folder: Path, test_fold: int, valid_fold: int, **_) -> list[_Item]:
    """UrbanSound8K: fold 10 test, 9 valid, the rest train by default."""
    return _list_folds("urbansound8k", data_folder, test_fold, valid_fold)


def _list_audiomnist(data_folder: Path, split_ratios: list[float], seed: int, **_) -> list[_Item]:
    """AudioMNIST: digit = label; speakers split into disjoint train/valid/test sets by seed."""
    root = data_folder / "data"
    if not root.is_dir():
        raise _layout_error("audiomnist", data_folder, "data/ not found")
    found = []
    for path in sorted(root.glob("*/*.wav")):
        match = _AUDIOMNIST_NAME.match(path.name)
        if match:
            found.append((path, match.group(1), match.group(2)))
    if not found:
        raise _layout_error("audiomnist", data_folder, "no data/NN/D_NN_K.wav files found")
    speakers = sorted({int(speaker) for _, _, speaker in found})
    split_of = dict(zip(speakers, _assign(len(speakers), split_ratios, seed, 0)))
    return [_Item(path, digit, split_of[int(speaker)], path.stem) for path, digit, speaker in found]


def _class_folders(data_folder: Path) -> list[str]:
    """Class names of a folder-per-class dataset: its non-hidden sub-folders, sorted."""
    if not data_folder.is_dir():
        raise InterpreterError(
            f"data_folder {data_folder} is not a folder; for dataset=folder give a folder with "
            "one sub-folder of audio files per class"
        )
    names = sorted(p.name for p in data_folder.iterdir() if p.is_dir() and p.name[0] != ".")
    if len(names) < 2:
        raise InterpreterError(
            f"data_folder {data_folder} has {len(names)} class sub-folders; dataset=folder needs "
            "one sub-folder of audio files per class, at least 2"
        )
    return names


def _list_folder(data_folder: Path, split_ratios: list[float], seed: int, **_) -> list[_Item]:
    """Own data, one sub-folder per class (searched recursively); stratified split by seed."""
    by_label = {}
    for label in _class_folders(data_folder):
        files = sorted(
            p
            for p in (data_folder / label).rglob("*")
            if p.is_file() and p.suffix.lower() in _AUDIO_SUFFIXES and p.name[0] != "."
        )
        if not files:
            raise InterpreterError(
                f"class folder {data_folder / label} holds no audio files "
                f"({', '.join(sorted(_AUDIO_SUFFIXES))}); add some or remove the folder"
            )
        by_label[label] = files
    return _stratified(by_label, split_ratios, seed)


def _read_own_csv(path: Path) -> list[tuple[str, str, str | None]]:
    """Rows (path, label, split or None) of an own-data CSV; a header row is optional."""
    if not path.is_file():
        raise InterpreterError(
            f"data_folder {path} is not a CSV file; for dataset=csv give a file with rows "
            "path,label[,split]"
        )
    with open(path, newline="", encoding="utf-8") as stream:
        rows = [[cell.strip() for cell in row] for row in csv.reader(stream) if any(row)]
    order = [0, 1, 2]
    if rows and rows[0][0].lower() == "path":
        header = [cell.lower() for cell in rows.pop(0)]
        if "label" not in header:
            raise InterpreterError(f"CSV {path}: its header has no 'label' column; add it")
        order = [header.index("path"), header.index("label")]
        order.append(header.index("split") if "split" in header else len(header) + 1)
    parsed = []
    for number, row in enumerate(rows, start=1):
        if len(row) <= max(order[:2]) or not row[order[0]] or not row[order[1]]:
            raise InterpreterError(f"CSV {path}: row {number} is not path,label[,split]; fix it")
        split = row[order[2]] if len(row) > order[2] and row[order[2]] else None
        parsed.append((row[order[0]], row[order[1]], split))
    if len({row[1] for row in parsed}) < 2:
        raise InterpreterError(f"CSV {path}: needs rows of at least 2 labels")
    return parsed


def _list_csv(data_folder: Path, split_ratios: list[float], seed: int, **_) -> list[_Item]:
    """Own data listed in a CSV: paths relative to its folder or absolute; its split column, or
    a stratified split by seed when there is none."""
    rows = _read_own_csv(data_folder)
    base = data_folder.parent
    with_split = [row for row in rows if row[2] is not None]
    if with_split and len(with_split) != len(rows):
        raise InterpreterError(
            f"CSV {data_folder}: some rows have a split and some not; give all or none"
        )
    for name, _, _ in rows:
        if not (base / name).is_file():
            raise InterpreterError(f"CSV {data_folder} lists {base / name}, which does not exist")
    if not with_split:
        by_label: dict[str, list[Path]] = {}
        for name, label, _ in rows:
            by_label.setdefault(label, []).append(base / name)
        return _stratified(by_label, split_ratios, seed)
    items, used = [], set()
    for name, label, split in rows:
        if split.lower() not in _SPLIT_NAMES:
            raise InterpreterError(
                f"CSV {data_folder}: split '{split}' of {name} is not train, valid or test"
            )
        source = base / name
        items.append(_Item(source, label, _SPLIT_NAMES[split.lower()], _unique(source, used)))
    return items


def _stratified(by_label: dict[str, list[Path]], ratios: list[float], seed: int) -> list[_Item]:
    """Split every class in the same proportions, deterministically from the seed."""
    items, used = [], set()
    for index, label in enumerate(sorted(by_label)):
        files = sorted(by_label[label])
        for source, split in zip(files, _assign(len(files), ratios, seed, index + 1)):
            items.append(_Item(source, label, split, _unique(source, used, label)))
    return items


def _assign(n: int, ratios: list[float], seed: int, stream: int) -> list[str]:
    """Split names for n things in a seeded random order; valid/test get at least one each when
    n >= 3 and their ratio is not 0."""
    counts = {}
    for split, ratio in zip(SPLITS[1:], ratios[1:]):
        counts[split] = round(n * ratio)
        if n >= 3 and ratio > 0:
            counts[split] = max(counts[split], 1)
    counts["train"] = n - counts["valid"] - counts["test"]
    names = ["train"] * counts["train"] + ["valid"] * counts["valid"] + ["test"] * counts["test"]
    order = np.random.default_rng([int(seed), stream]).permutation(n)
    return [names[i] for i in order]


def _unique(source: Path, used: set[str], prefix: str = "") -> str:
    """A manifest id from a file name, safe as a file name and unique among ``used``."""
    base = re.sub(r"[^\w.-]", "_", f"{prefix}_{source.stem}" if prefix else source.stem)
    item_id, k = base, 1
    while item_id in used:
        k += 1
        item_id = f"{base}_{k}"
    used.add(item_id)
    return item_id


_LISTERS = {
    "esc50": _list_esc50,
    "urbansound8k": _list_urbansound8k,
    "audiomnist": _list_audiomnist,
    "folder": _list_folder,
    "csv": _list_csv,
}


def _check_name(dataset: str) -> None:
    """One line for a dataset name we do not know."""
    if dataset not in DATASETS:
        raise InterpreterError(f"dataset '{dataset}' is unknown; use one of {list(DATASETS)}")


def _generator(dataset: str):
    """prepare_synth or prepare_instruments, imported only when asked for."""
    if dataset == "synth":
        from interpreters.data.synth import prepare_synth

        return prepare_synth
    from interpreters.data.instruments import prepare_instruments

    return prepare_instruments


def _pick(options: dict, *names: str) -> dict:
    """The given options that are set (the generators' own defaults fill the rest)."""
    return {name: options[name] for name in names if options.get(name) is not None}
