"""The dataset switch: public layouts (ESC-50, UrbanSound8K, AudioMNIST) and own data (folder,
CSV) made of tiny generated wavs at other rates / stereo, converted once into manifests."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from interpreters.data import datasets
from interpreters.data.datasets import dataset_labels, manifest_paths, prepare_dataset
from interpreters.errors import InterpreterError

RATE = 8000  # what every test asks for
DURATION = 0.25


def _tone(path: Path, rate: int, seconds: float, freq: float, channels: int = 1) -> None:
    """A sine at ``freq`` Hz, written at ``rate`` with ``channels`` identical channels."""
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.stack([wave] * channels, axis=1), rate)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)


def _esc50(root: Path) -> Path:
    """ESC-50 layout: 5 folds x 2 classes, 22.05 kHz stereo clips 0.4 s long (longer than 0.25)."""
    rows = []
    for fold in range(1, 6):
        for target, category in ((0, "dog"), (1, "rooster")):
            name = f"{fold}-{100 + fold}-A-{target}.wav"
            _tone(root / "audio" / name, 22050, 0.4, 300 + 200 * target, channels=2)
            rows.append([name, fold, target, category, "True", 100 + fold, "A"])
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    _write_csv(root / "meta" / "esc50.csv", header, rows)
    return root


def _urbansound8k(root: Path) -> Path:
    """UrbanSound8K layout: 10 folds x 2 classes, 11.025 kHz mono clips 0.1 s long (padded)."""
    rows = []
    for fold in range(1, 11):
        for class_id, name in ((3, "dog_bark"), (1, "car_horn")):
            file = f"{fold}{class_id}-{class_id}-0-0.wav"
            _tone(root / "audio" / f"fold{fold}" / file, 11025, 0.1, 500)
            rows.append([file, fold * 10 + class_id, 0.0, 0.1, 1, fold, class_id, name])
    header = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    _write_csv(root / "metadata" / "UrbanSound8K.csv", header, rows)
    return root


def _audiomnist(root: Path, n_speakers: int = 10) -> Path:
    """AudioMNIST layout: data/NN/D_NN_K.wav, 3 digits x 2 takes per speaker at 48 kHz."""
    for speaker in range(1, n_speakers + 1):
        for digit in range(3):
            for take in range(2):
                name = f"{digit}_{speaker:02d}_{take}.wav"
                _tone(root / "data" / f"{speaker:02d}" / name, 48000, 0.2, 400 + 100 * digit)
    return root


def _own_folder(root: Path, per_class: int = 5) -> Path:
    """One sub-folder per class, mixed formats (wav, flac) and a nested folder."""
    for label, freq in (("bird", 2000), ("engine", 150)):
        for k in range(per_class):
            suffix = "flac" if k % 2 else "wav"
            sub = "more/" if k == 0 else ""
            _tone(root / label / f"{sub}{label}{k}.{suffix}", 16000, 0.3, freq + 10 * k)
    return root


def _load(path: str) -> dict:
    with open(path) as stream:
        return json.load(stream)


def _sources(manifest: str) -> dict[str, str]:
    return {entry["source"]: entry["label"] for entry in _load(manifest).values()}


def _prepare(dataset: str, data: Path, tmp_path: Path, **options) -> dict[str, str]:
    return prepare_dataset(
        dataset, str(data), str(tmp_path / "prepared"), RATE, DURATION, 0, **options
    )


def test_esc50_folds_resampling_and_reuse(tmp_path):
    root = _esc50(tmp_path / "ESC-50")
    manifests = _prepare("esc50", root, tmp_path)
    assert manifests == manifest_paths(
        "esc50", str(tmp_path / "prepared"), ["train", "valid", "test"]
    )
    folds = {
        split: sorted({Path(s).name[0] for s in _sources(manifests[split])}) for split in manifests
    }
    assert folds == {"train": ["1", "2", "3"], "valid": ["4"], "test": ["5"]}
    assert dataset_labels("esc50", str(root)) == ["dog", "rooster"]
    entry = next(iter(_load(manifests["test"]).values()))
    wav_path = entry["wav"].replace("{data_root}", str(tmp_path / "prepared"))
    wav, rate = sf.read(wav_path, always_2d=True)
    assert rate == RATE and wav.shape == (round(RATE * DURATION), 1)
    spectrum = np.abs(np.fft.rfft(wav[:, 0]))
    assert (
        abs(np.argmax(spectrum) * RATE / len(wav) - (300 if entry["label"] == "dog" else 500)) < 8
    )
    before = os.path.getmtime(wav_path)
    assert _prepare("esc50", root, tmp_path) == manifests  # reused, nothing rewritten
    assert os.path.getmtime(wav_path) == before
    with pytest.raises(InterpreterError, match="other settings .*test_fold: 5 there vs 2 asked"):
        _prepare("esc50", root, tmp_path, test_fold=2)


def test_urbansound8k_test_fold(tmp_path):
    root = _urbansound8k(tmp_path / "UrbanSound8K")
    assert dataset_labels("urbansound8k", str(root)) == ["car_horn", "dog_bark"]
    for test_fold, valid_fold in ((None, 9), (3, 2), (1, 10)):
        prepared = tmp_path / f"prepared{test_fold}"
        manifests = prepare_dataset(
            "urbansound8k", str(root), str(prepared), RATE, DURATION, 0, test_fold=test_fold
        )
        folds = {s: {Path(p).parent.name for p in _sources(m)} for s, m in manifests.items()}
        assert folds["test"] == {f"fold{test_fold or 10}"}
        assert folds["valid"] == {f"fold{valid_fold}"}
        assert len(folds["train"]) == 8 and not folds["train"] & (folds["test"] | folds["valid"])
    wav, rate = sf.read(str(prepared / "test" / "13-3-0-0.wav"))
    assert rate == RATE and len(wav) == round(RATE * DURATION)
    assert np.all(wav[round(0.1 * RATE) + 2 :] == 0)  # padded with silence after 0.1 s


def test_audiomnist_speakers_are_disjoint_and_deterministic(tmp_path):
    root = _audiomnist(tmp_path / "AudioMNIST")
    assert dataset_labels("audiomnist", str(root)) == [str(d) for d in range(10)]
    manifests = _prepare("audiomnist", root, tmp_path, split_ratios=[0.6, 0.2, 0.2])
    speakers = {s: {Path(p).parent.name for p in _sources(m)} for s, m in manifests.items()}
    assert [len(speakers[s]) for s in ("train", "valid", "test")] == [6, 2, 2]
    assert not speakers["train"] & speakers["valid"] and not speakers["valid"] & speakers["test"]
    again = prepare_dataset(
        "audiomnist",
        str(root),
        str(tmp_path / "again"),
        RATE,
        DURATION,
        0,
        split_ratios=[0.6, 0.2, 0.2],
    )
    assert {s: _sources(m) for s, m in again.items()} == {
        s: _sources(m) for s, m in manifests.items()
    }
    assert {label for label in _sources(manifests["train"]).values()} == {"0", "1", "2"}


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("esc50", r"ESC-50 .*meta/esc50.csv not found; expected meta/esc50.csv \+ audio/\*.wav"),
        ("urbansound8k", r"metadata/UrbanSound8K.csv \+ audio/foldN/\*.wav .*urbansounddataset"),
        ("audiomnist", r"data/ not found; expected data/NN/D_NN_K.wav .*soerenab/AudioMNIST"),
    ],
)
def test_wrong_layout_names_the_expected_one(tmp_path, dataset, expected):
    wrong = tmp_path / "wrong"
    (wrong / "audio").mkdir(parents=True)
    with pytest.raises(InterpreterError, match=expected) as err:
        _prepare(dataset, wrong, tmp_path)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "prepared").exists()
    if dataset != "audiomnist":  # its labels are the digits, no file is read
        with pytest.raises(InterpreterError, match=expected):
            dataset_labels(dataset, str(wrong))


def test_corrupt_or_missing_audio_is_named(tmp_path):
    root = _esc50(tmp_path / "ESC-50")
    (root / "audio" / "2-102-A-1.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(InterpreterError, match=r"audio file .*2-102-A-1.wav cannot be read"):
        _prepare("esc50", root, tmp_path)
    (root / "audio" / "2-102-A-1.wav").unlink()
    with pytest.raises(
        InterpreterError, match=r"1 listed audio files are missing, e.g. .*2-102-A-1"
    ):
        prepare_dataset("esc50", str(root), str(tmp_path / "other"), RATE, DURATION, 0)


def test_own_folder_is_split_per_class(tmp_path):
    root = _own_folder(tmp_path / "mine")
    (root / "notes.txt").write_text("not a class")
    assert dataset_labels("folder", str(root)) == ["bird", "engine"]
    manifests = _prepare("folder", root, tmp_path, split_ratios=[0.6, 0.2, 0.2])
    per_split = {s: list(_sources(m).values()) for s, m in manifests.items()}
    for label in ("bird", "engine"):
        assert [per_split[s].count(label) for s in ("train", "valid", "test")] == [3, 1, 1]
    assert len({p for m in manifests.values() for p in _sources(m)}) == 10  # nested + flac too
    (root / "empty").mkdir()
    with pytest.raises(InterpreterError, match="class folder .*empty holds no audio files"):
        prepare_dataset("folder", str(root), str(tmp_path / "p2"), RATE, DURATION, 0)


def test_own_csv_with_and_without_split(tmp_path):
    root = _own_folder(tmp_path / "mine")
    rows = [[f"mine/bird/bird{k}.{'flac' if k % 2 else 'wav'}", "bird"] for k in range(1, 5)]
    rows += [
        [str(root / "engine" / f"engine{k}.{'flac' if k % 2 else 'wav'}"), "engine"]
        for k in range(1, 5)
    ]
    splits = ["train", "train", "valid", "test"] * 2
    _write_csv(
        tmp_path / "with.csv", ["path", "label", "split"], [r + [s] for r, s in zip(rows, splits)]
    )
    manifests = prepare_dataset(
        "csv", str(tmp_path / "with.csv"), str(tmp_path / "p1"), RATE, DURATION, 0
    )
    assert {s: len(_load(m)) for s, m in manifests.items()} == {"train": 4, "valid": 2, "test": 2}
    assert dataset_labels("csv", str(tmp_path / "with.csv")) == ["bird", "engine"]
    without = tmp_path / "without.csv"
    without.write_text("".join(f"{p},{label}\n" for p, label in rows))
    manifests = prepare_dataset("csv", str(without), str(tmp_path / "p2"), RATE, DURATION, 0)
    assert {s: len(_load(m)) for s, m in manifests.items()} == {"train": 4, "valid": 2, "test": 2}
    without.write_text(without.read_text() + "mine/bird/missing.wav,bird\n")
    with pytest.raises(
        InterpreterError, match=r"lists .*mine/bird/missing.wav, which does not exist"
    ):
        prepare_dataset("csv", str(without), str(tmp_path / "p3"), RATE, DURATION, 0)


def test_unknown_dataset_and_foreign_prepared_folder(tmp_path):
    with pytest.raises(InterpreterError, match="dataset 'esc51' is unknown"):
        dataset_labels("esc51", str(tmp_path))
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "keep.txt").write_text("someone else's")
    with pytest.raises(InterpreterError, match="not made by prepare_dataset"):
        _prepare("folder", _own_folder(tmp_path / "mine"), tmp_path)
    assert datasets.default_prepared_folder("synth", "data/x", 16000, 2.0) == "data/x"


@pytest.mark.parametrize("dataset", ["synth", "instruments"])
def test_generated_sets_dispatch_and_extra_ood_sets(tmp_path, dataset):
    """Generated sets are made in prepared_folder with their own mixtures; other OOD sets are
    drawn from their test split, at the paths the yaml's manifest_paths gives."""
    sizes = dict(n_train_per_class=1, n_valid_per_class=1, n_test_per_class=1, n_mixtures=2)
    folder = str(tmp_path / dataset)
    manifests = prepare_dataset(
        dataset, folder, folder, RATE, DURATION, 0, ood_sets=["mixtures", "white_noise"], **sizes
    )
    names = ["train", "valid", "test", "mixtures"]
    assert manifests == manifest_paths(dataset, folder, names, ["mixtures", "white_noise"])
    assert manifests["white_noise"] == os.path.join(folder, "ood", "white_noise.json")
    labels = dataset_labels(dataset, folder)
    for name, path in manifests.items():
        entries = _load(path)
        assert len(entries) == (2 if name in ("mixtures", "white_noise") else len(labels))
        assert {entry["label"] for entry in entries.values()} <= set(labels)


def test_metadata_with_a_bad_fold_is_one_line(tmp_path):
    root = _esc50(tmp_path / "ESC-50")
    meta = root / "meta" / "esc50.csv"
    meta.write_text(meta.read_text().replace("1-101-A-0.wav,1,", "1-101-A-0.wav,one,"))
    with pytest.raises(InterpreterError, match=r"esc50.csv line 2: fold 'one' is no number"):
        dataset_labels("esc50", str(root))
