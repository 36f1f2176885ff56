"""Tests of the instruments dataset (fluidsynth + FluidR3 GM): audio, mixtures, determinism."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import interpreters  # noqa: F401  (installs the compat hook that ``import speechbrain`` needs)
from interpreters.data import instruments
from interpreters.data.instruments import DEFAULT_SOUNDFONT, class_names, prepare_instruments
from interpreters.errors import InterpreterError

SR = 16000
TINY = {
    "n_train_per_class": 1,
    "n_valid_per_class": 1,
    "n_test_per_class": 1,
    "n_mixtures": 6,
    "duration": 0.5,
    "sample_rate": SR,
}


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _read(path: str, folder: Path) -> np.ndarray:
    audio, rate = sf.read(path.replace("{data_root}", str(folder)), dtype="float32")
    assert rate == SR
    return audio


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One tiny instruments set (one 0.5 s clip per family and split, six mixtures)."""
    if shutil.which("fluidsynth") is None or not Path(DEFAULT_SOUNDFONT).is_file():
        pytest.skip("fluidsynth or fluid-soundfont-gm is not installed (make setup installs them)")
    folder = tmp_path_factory.mktemp("instruments") / "data"
    return folder, prepare_instruments(str(folder), **TINY)


def test_clips_cover_every_family_with_real_non_silent_audio(
    data: tuple[Path, dict[str, str]],
) -> None:
    folder, manifests = data
    assert len(class_names()) >= 10 and len(set(class_names())) == len(class_names())
    for split in ("train", "valid", "test"):
        entries = json.loads(Path(manifests[split]).read_text())
        assert sorted(e["label"] for e in entries.values()) == sorted(class_names())
        for entry in entries.values():
            audio = _read(entry["wav"], folder)
            assert audio.shape == (8000,) and entry["duration"] == 0.5
            assert 0.3 - 1e-3 <= np.max(np.abs(audio)) <= 0.9 + 1e-3
            assert 0 <= entry["onset"] < entry["offset"] <= 0.5
            onset, offset = (round(entry[k] * SR) for k in ("onset", "offset"))
            inside = np.sqrt(np.mean(audio[onset:offset] ** 2))
            assert inside > 1e-3  # a real note, not silence


def test_mixtures_have_two_families_whose_stems_sum_to_the_mixture(
    data: tuple[Path, dict[str, str]],
) -> None:
    folder, manifests = data
    entries = json.loads(Path(manifests["mixtures"]).read_text())
    assert len(entries) == 6
    for entry in entries.values():
        mix, stem1, stem2 = (_read(entry[k], folder) for k in ("wav", "stem1", "stem2"))
        assert np.array_equal(stem1 + stem2, mix)
        assert entry["label"] == entry["label1"] != entry["label2"]
        assert {entry["label1"], entry["label2"]} <= set(class_names())
        energy = [np.sum(s.astype(np.float64) ** 2) for s in (stem1, stem2)]
        assert entry["snr_db"] == pytest.approx(10 * np.log10(energy[0] / energy[1]), abs=1e-3)
        assert -5 <= entry["snr_db"] <= 5


def test_same_seed_same_files_other_seed_other_files(
    data: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, _ = data
    prepare_instruments(str(tmp_path / "again"), **TINY)
    assert _files(tmp_path / "again") == _files(folder)
    prepare_instruments(str(tmp_path / "other"), **{**TINY, "n_mixtures": 0}, seed=1)
    other = _files(tmp_path / "other")
    assert other["train/train_00000_piano.wav"] != _files(folder)["train/train_00000_piano.wav"]


def test_written_once_and_other_settings_refused(data: tuple[Path, dict[str, str]]) -> None:
    folder, manifests = data
    stamp = Path(manifests["train"]).stat().st_mtime_ns
    assert prepare_instruments(str(folder), **TINY) == manifests
    assert Path(manifests["train"]).stat().st_mtime_ns == stamp
    with pytest.raises(InterpreterError, match="other settings .*seed: 1234 there vs 7 asked"):
        prepare_instruments(str(folder), **TINY, seed=7)


def test_missing_soundfont_or_fluidsynth_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InterpreterError, match="soundfont .*missing.sf2 does not exist; run `make"):
        prepare_instruments(str(tmp_path / "a"), **TINY, soundfont=str(tmp_path / "missing.sf2"))
    monkeypatch.setattr(instruments.shutil, "which", lambda name: None)
    with pytest.raises(InterpreterError, match="needs the fluidsynth program; run `make setup`"):
        prepare_instruments(str(tmp_path / "b"), **TINY)
