"""Tests of the out-of-distribution sets: stems, labels, SNR, determinism, sources, caching."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import interpreters  # noqa: F401  (installs the compat hook that ``import speechbrain`` needs)
from interpreters.data import ood
from interpreters.data.ood import build_ood_sets
from interpreters.data.synth import class_names, prepare_synth
from interpreters.errors import InterpreterError

SR = 16000
N = 8  # items per OOD set


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny synth set (22 test clips of 0.5 s); its test manifest feeds every OOD build."""
    folder = tmp_path_factory.mktemp("ood") / "data"
    manifests = prepare_synth(str(folder), 1, 1, 2, 0, duration=0.5, sample_rate=SR)
    return folder, manifests["test"]


def _read(path: str, folder: Path) -> np.ndarray:
    """Read a manifest wav back from disk."""
    audio, rate = sf.read(path.replace("{data_root}", str(folder)), dtype="float32")
    assert rate == SR
    return audio


def _items(
    manifest: str, folder: Path
) -> dict[str, tuple[dict, np.ndarray, np.ndarray, np.ndarray]]:
    """Each entry with its mixture and stems as written."""
    entries = json.loads(Path(manifest).read_text())
    return {
        key: (e, _read(e["wav"], folder), _read(e["stem1"], folder), _read(e["stem2"], folder))
        for key, e in entries.items()
    }


def _check_items(manifest: str, folder: Path, label2: str | None, snr_db: float) -> None:
    """Stems sum exactly to the mixture; labels and the recorded SNR match the audio."""
    items = _items(manifest, folder)
    assert len(items) == N
    test = json.loads((folder / "test.json").read_text())
    for entry, mix, stem1, stem2 in items.values():
        assert np.array_equal(stem1 + stem2, mix)
        assert len(mix) == round(entry["duration"] * SR) == 8000
        assert entry["label"] == entry["label1"] == test[entry["source"]]["label"]
        if label2 is None:
            assert entry["label2"] != entry["label"] and entry["label2"] in class_names()
        else:
            assert entry["label2"] == label2
        energy = [np.sum(s.astype(np.float64) ** 2) for s in (stem1, stem2)]
        assert entry["snr_db"] == pytest.approx(10 * np.log10(energy[0] / energy[1]), abs=1e-6)
        assert entry["snr_db"] == pytest.approx(snr_db, abs=1e-3)
        # Peak-matched to the clean clip, so the level stays in distribution.
        clip = _read(test[entry["source"]]["wav"], folder)
        assert np.max(np.abs(mix)) == pytest.approx(np.max(np.abs(clip)), rel=1e-4)


def test_mixtures_and_white_noise_follow_the_upstream_weights(data: tuple[Path, str]) -> None:
    folder, test = data
    paths = build_ood_sets(test, str(folder), SR, 3, ["mixtures", "white_noise"], n_items=N)
    assert paths == {k: str(folder / "ood" / f"{k}.json") for k in ("mixtures", "white_noise")}
    _check_items(paths["mixtures"], folder, None, 20 * np.log10(0.8 / 0.2))
    _check_items(paths["white_noise"], folder, "white_noise", 20 * np.log10(1 / 0.5))


def test_overlap_set_picks_spectrally_close_time_aligned_contaminants(data):
    import torch

    from interpreters.audio import FrontEnd
    from interpreters.evaluation.metrics import stem_overlap

    folder, test = data
    kinds = ["mixtures", "overlap"]
    paths = build_ood_sets(test, str(folder), SR, 3, kinds, n_items=N, subfolder="ov")
    front_end = FrontEnd(SR, n_fft=512, hop_length=256)
    shared = {}
    for kind in kinds:
        items = _items(paths[kind], folder)
        assert len(items) == N
        values = []
        for entry, mix, stem1, stem2 in items.values():
            assert np.array_equal(stem1 + stem2, mix)
            assert entry["label2"] != entry["label"] and entry["label2"] in class_names()
            if kind == "overlap":
                assert -5.0 - 1e-3 <= entry["snr_db"] <= 5.0 + 1e-3
                assert {"source2", "spectral_overlap", "shift"} <= set(entry)
            mags = [front_end.stft(torch.from_numpy(x)[None]).abs() for x in (stem1, stem2, mix)]
            values.append(float(stem_overlap(*mags)["TF-overlap"]))
        shared[kind] = np.mean(values)
    assert shared["overlap"] > shared["mixtures"]  # the stems share more time-frequency bins


def test_snr_override_and_determinism_by_seed(data: tuple[Path, str]) -> None:
    folder, test = data
    builds = {}
    for sub, seed in (("a", 5), ("b", 5), ("c", 6)):
        paths = build_ood_sets(
            test, str(folder), SR, seed, ["mixtures"], n_items=N, snr_db=-3.0, subfolder=sub
        )
        builds[sub] = _items(paths["mixtures"], folder)
    _check_items(str(folder / "a" / "mixtures.json"), folder, None, -3.0)
    for key, (entry, *audio) in builds["a"].items():
        entry_b, *audio_b = builds["b"][key]
        assert json.dumps(entry).replace("/a/", "/b/") == json.dumps(entry_b)
        assert all(np.array_equal(x, y) for x, y in zip(audio, audio_b))
    assert [e["source2"] for e, *_ in builds["a"].values()] != [
        e["source2"] for e, *_ in builds["c"].values()
    ]


def test_written_once_and_other_settings_refused(data: tuple[Path, str]) -> None:
    folder, test = data
    args = (test, str(folder), SR)
    path = Path(build_ood_sets(*args, 1, ["white_noise"], n_items=N, subfolder="w")["white_noise"])
    stamp = path.stat().st_mtime_ns
    build_ood_sets(*args, 1, ["white_noise"], n_items=N, subfolder="w")
    assert path.stat().st_mtime_ns == stamp
    with pytest.raises(InterpreterError, match="other settings .*seed: 1 there vs 2 asked"):
        build_ood_sets(*args, 2, ["white_noise"], n_items=N, subfolder="w")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_speech_from_espeak(data: tuple[Path, str]) -> None:
    folder, test = data
    paths = build_ood_sets(test, str(folder), SR, 0, ["speech"], n_items=N, subfolder="sp")
    _check_items(paths["speech"], folder, "speech", 20 * np.log10(1 / 0.5))
    stems = [stem2 for _, _, _, stem2 in _items(paths["speech"], folder).values()]
    assert len({s.tobytes() for s in stems}) == N  # different crops/utterances
    again = build_ood_sets(test, str(folder), SR, 0, ["speech"], n_items=N, subfolder="sp2")
    stems_again = [stem2 for _, _, _, stem2 in _items(again["speech"], folder).values()]
    assert all(np.array_equal(a, b) for a, b in zip(stems, stems_again))  # espeak-ng is too


def test_speech_and_noise_folders_are_resampled_downmixed_and_tiled(
    data: tuple[Path, str], tmp_path: Path
) -> None:
    folder, test = data
    sources = tmp_path / "noise"
    (sources / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(sources / "a.wav", rng.standard_normal((3000, 2)) * 0.1, 8000)  # 0.375 s stereo
    sf.write(sources / "sub" / "b.flac", rng.standard_normal(20000) * 0.1, 22050)
    (sources / "readme.txt").write_text("not audio")
    folders = {"speech_folder": str(sources), "noise_folder": str(sources)}
    paths = build_ood_sets(
        test, str(folder), SR, 0, ["speech", "noise"], **folders, n_items=N, snr_db={"noise": 0.0}
    )
    _check_items(paths["speech"], folder, "speech", 20 * np.log10(1 / 0.5))
    _check_items(paths["noise"], folder, "noise", 0.0)


def test_missing_sources_are_one_line_errors(
    data: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, test = data
    with pytest.raises(InterpreterError, match="needs noise_folder"):
        build_ood_sets(test, str(folder), SR, 0, ["noise"], subfolder="e")
    with pytest.raises(InterpreterError, match="unknown ood kinds"):
        build_ood_sets(test, str(folder), SR, 0, ["babble"], subfolder="e")
    monkeypatch.setattr(ood.shutil, "which", lambda name: None)
    with pytest.raises(InterpreterError, match=r"espeak-ng; run `make setup`"):
        build_ood_sets(test, str(folder), SR, 0, ["speech"], subfolder="e")


def test_pipelines_read_ood_sets_with_unknown_contaminants_as_minus_one(
    data: tuple[Path, str],
) -> None:
    from interpreters.data.dataio import build_datasets

    folder, test = data
    paths = build_ood_sets(test, str(folder), SR, 3, ["white_noise"], n_items=N, subfolder="p")
    item = build_datasets(paths, str(folder), class_names(), SR)["white_noise"][0]
    assert item["stem_labels"][1] == -1 and item["stem_labels"][0] == item["label_index"][0]
    assert bool((item["stem1_sig"] + item["stem2_sig"] == item["sig"]).all())
