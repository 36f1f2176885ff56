"""Tests of the embedded synth dataset: manifests, audio, mixtures, determinism, caching, errors."""

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import interpreters  # noqa: F401  (installs the compat hook that ``import speechbrain`` needs)
from interpreters.data.synth import CLASSES, class_names, generate_event, prepare_synth

SR = 16000
DURATION = 0.5
TINY = {
    "n_train_per_class": 2,
    "n_valid_per_class": 1,
    "n_test_per_class": 1,
    "n_mixtures": 6,
    "duration": DURATION,
    "sample_rate": SR,
}
PER_CLASS = {"train": 2, "valid": 1, "test": 1}


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _mtimes(folder: Path) -> dict[str, int]:
    """Modification time (ns) of every file and folder under ``folder``."""
    return {str(path): path.stat().st_mtime_ns for path in sorted(folder.rglob("*"))}


def _load(manifest: str, folder: Path, keys: list[str]) -> list[dict]:
    """Load a manifest the way recipes do and return its items."""
    # Imported here, after ``interpreters``: import sorting must not hoist it above the hook.
    from speechbrain.dataio.dataset import DynamicItemDataset

    dataset = DynamicItemDataset.from_json(manifest, replacements={"data_root": str(folder)})
    dataset.set_output_keys(keys)
    return list(dataset)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One tiny synth set shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("synth") / "data"
    return folder, prepare_synth(str(folder), **TINY)


def test_classes_are_the_documented_eleven() -> None:
    assert CLASSES == (
        "tone_burst",
        "chirp_up",
        "chirp_down",
        "noise_burst",
        "click_train",
        "vowel",
        "siren",
        "band_noise",
        "tweet",
        "knock",
        "buzz",
    )
    assert class_names() == list(CLASSES)


@pytest.mark.parametrize("label", CLASSES)
def test_generate_event_is_finite_nonsilent_float32(label: str) -> None:
    for seed in range(3):
        event = generate_event(label, np.random.default_rng(seed), SR, 8000)
        assert event.dtype == np.float32
        assert event.shape == (8000,)
        assert np.all(np.isfinite(event))
        assert np.max(np.abs(event)) == pytest.approx(1.0, abs=1e-6)
        assert np.count_nonzero(np.abs(event) > 1e-3) > 0.005 * SR  # lasts, is not one spike


def test_generate_event_rejects_unknown_class() -> None:
    with pytest.raises(ValueError, match="unknown synth class"):
        generate_event("violin", np.random.default_rng(0), SR, 8000)


def test_manifests_load_balanced_with_speechbrain(synth: tuple[Path, dict[str, str]]) -> None:
    folder, manifests = synth
    assert set(manifests) == {"train", "valid", "test", "mixtures"}
    for name, path in manifests.items():
        assert path == os.path.join(str(folder), f"{name}.json")
    for split, per_class in PER_CLASS.items():
        items = _load(manifests[split], folder, ["id", "wav", "label", "onset", "offset"])
        assert Counter(item["label"] for item in items) == dict.fromkeys(CLASSES, per_class)
        for item in items:
            assert item["id"].startswith(f"{split}_") and item["id"].endswith(item["label"])
            assert item["wav"] == os.path.join(str(folder), split, f"{item['id']}.wav")
            assert os.path.isfile(item["wav"])
            assert 0 <= item["onset"] < item["offset"] <= DURATION
    mixtures = _load(manifests["mixtures"], folder, ["id", "wav", "stem1", "stem2", "label"])
    assert len(mixtures) == TINY["n_mixtures"]
    assert all(os.path.isfile(item[key]) for item in mixtures for key in ("wav", "stem1", "stem2"))


def test_clean_wavs_have_length_rate_and_event_where_labelled(
    synth: tuple[Path, dict[str, str]],
) -> None:
    folder, manifests = synth
    for split in PER_CLASS:
        for item in _load(manifests[split], folder, ["wav", "onset", "offset", "duration"]):
            info = sf.info(item["wav"])
            assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
            assert info.frames == round(DURATION * SR) and item["duration"] == DURATION
            audio, _ = sf.read(item["wav"], dtype="float32")
            assert 0.29 <= np.max(np.abs(audio)) <= 0.91
            onset, offset = round(item["onset"] * SR), round(item["offset"] * SR)
            head = audio[onset : onset + SR // 10]  # every class is loud within 0.1 s of onset
            assert np.max(np.abs(head)) > 0.3 * np.max(np.abs(audio))
            outside = np.concatenate([audio[:onset], audio[offset:]])
            if len(outside) > 400:  # only background out there: far below the event's peak
                rms = np.sqrt(np.mean(outside.astype(np.float64) ** 2))
                assert 20 * np.log10(np.max(np.abs(audio[onset:offset])) / rms) > 20


def test_mixture_stems_sum_to_mixture_at_the_drawn_snr(
    synth: tuple[Path, dict[str, str]],
) -> None:
    folder, manifests = synth
    keys = ["wav", "stem1", "stem2", "label", "label1", "label2", "snr_db", "onset1", "offset1"]
    for item in _load(manifests["mixtures"], folder, keys):
        mixture, rate = sf.read(item["wav"], dtype="float32")
        stem1, _ = sf.read(item["stem1"], dtype="float32")
        stem2, _ = sf.read(item["stem2"], dtype="float32")
        assert rate == SR and sf.info(item["wav"]).subtype == "FLOAT"
        assert b"PEAK" not in Path(item["wav"]).read_bytes()  # its timestamp would vary per run
        assert mixture.shape == stem1.shape == stem2.shape == (round(DURATION * SR),)
        np.testing.assert_allclose(stem1 + stem2, mixture, atol=1e-5)
        energy1, energy2 = np.sum(stem1.astype(np.float64) ** 2), np.sum(stem2**2.0)
        assert 10 * np.log10(energy1 / energy2) == pytest.approx(item["snr_db"], abs=0.01)
        assert -5.0 <= item["snr_db"] <= 5.0
        assert np.max(np.abs(mixture)) <= 0.9 + 1e-6
        assert item["label"] == item["label1"] != item["label2"]
        assert {item["label1"], item["label2"]} <= set(CLASSES)
        onset, offset = round(item["onset1"] * SR), round(item["offset1"] * SR)
        assert not np.any(stem1[:onset]) and not np.any(stem1[offset:])


def test_same_seed_gives_identical_bytes_other_seed_differs(
    synth: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, _ = synth
    reference = _files(folder)
    prepare_synth(str(tmp_path / "again"), **TINY)
    assert _files(tmp_path / "again") == reference

    prepare_synth(str(tmp_path / "other"), **TINY, seed=99)
    other = _files(tmp_path / "other")
    train = [name for name in reference if name.startswith("train/")]
    assert len(train) == 2 * len(CLASSES) and all(name in other for name in train)
    assert all(other[name] != reference[name] for name in train)
    assert other["mixtures.json"] != reference["mixtures.json"]


def test_items_do_not_depend_on_how_many_others_exist(
    synth: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, _ = synth
    reference = _files(folder)
    bigger = dict(TINY, n_train_per_class=3, n_mixtures=4)
    prepare_synth(str(tmp_path / "bigger"), **bigger)
    files = _files(tmp_path / "bigger")
    shared = [name for name in reference if name.endswith(".wav") and name in files]
    assert sum(name.startswith("train/") for name in shared) == 2 * len(CLASSES)
    assert sum(name.startswith("mixtures/") for name in shared) == 3 * 4
    assert all(files[name] == reference[name] for name in shared)


def test_second_call_skips_without_touching_files(
    synth: tuple[Path, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    folder, manifests = synth
    before = _mtimes(folder)
    with caplog.at_level("INFO", logger="interpreters.data.synth"):
        assert prepare_synth(str(folder), **TINY) == manifests
    assert _mtimes(folder) == before
    assert "skipping" in caplog.text and str(folder) in caplog.text


def test_interrupted_generation_is_redone(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    prepare_synth(str(folder), **TINY)
    reference = _files(folder)
    (folder / "test.json").unlink()  # as if killed before the last manifest was written
    wav = folder / "train" / "train_00000_tone_burst.wav"
    wav.write_bytes(b"half-written")
    prepare_synth(str(folder), **TINY)
    assert _files(folder) == reference


def test_differing_config_raises_and_keeps_data(
    synth: tuple[Path, dict[str, str]],
) -> None:
    folder, _ = synth
    before = _mtimes(folder)
    with pytest.raises(ValueError) as error:
        prepare_synth(str(folder), **dict(TINY, n_train_per_class=3, seed=7))
    message = str(error.value)
    assert "\n" not in message and str(folder) in message
    assert "n_train_per_class" in message and "seed" in message and "n_mixtures" not in message
    assert "delete" in message
    assert _mtimes(folder) == before


def test_folder_with_foreign_manifests_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text(json.dumps({"x": {"wav": "a.wav"}}))
    with pytest.raises(ValueError, match="no synth_config.json"):
        prepare_synth(str(tmp_path), **TINY)
    assert json.loads((tmp_path / "train.json").read_text()) == {"x": {"wav": "a.wav"}}


def test_unwritable_folder_gives_a_clear_error(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for folder in (a_file, a_file / "below"):
        with pytest.raises(ValueError) as error:
            prepare_synth(str(folder), **TINY)
        message = str(error.value)
        assert message.startswith(f"data_folder {folder} is not writable: ")
        assert message.endswith("; set data_folder to a writable folder")
        assert "\n" not in message
    if os.geteuid() != 0:  # root may write anywhere, so the permission case needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="is not writable"):
            prepare_synth(str(locked / "data"), **TINY)
