"""Export, from_hparams, the interpret command on good and bad files, and the HTML report."""

import re
import shutil
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY_DATA, run_recipe

from interpreters.errors import InterpreterError
from interpreters.inference import Interpreter

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def exported(trained_classifier, tmp_path_factory):
    """A tiny L-MAC run trained through recipes/train.py, then exported by recipes/export.py."""
    base = tmp_path_factory.mktemp("lmac")
    run = base / "run"
    run_recipe(
        "train.py",
        "hparams/lmac.yaml",
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={trained_classifier['pretrained']}",
        f"--output_folder={run}",
        "--number_of_epochs=1",
        "--batch_size=4",
        "--n_examples=2",
        *TINY_DATA,
    )
    run_recipe("export.py", "--run", str(run), "--out", str(base / "exported"))
    return {"run": run, "folder": base / "exported", "base": base}


def test_export_layout_and_model_card(exported):
    folder = exported["folder"]
    for name in (
        "hyperparams.yaml",
        "overrides.yaml",
        "decoder.ckpt",
        "label_encoder.txt",
        "classifier/hyperparams.yaml",
        "classifier/classifier.ckpt",
    ):
        assert (folder / name).is_file(), name
    card = (folder / "README.md").read_text()
    assert "L-MAC" in card and "| L-MAC · test |" in card


def test_from_hparams_reproduces_the_training_run(exported, tmp_path):
    interpreter = Interpreter.from_hparams(str(exported["folder"]), savedir=tmp_path / "saved")
    wav_folder = exported["run"] / "examples" / "test" / "wav"
    inputs = sorted(wav_folder.glob("*_input.wav"))
    assert inputs
    for path in inputs:
        wav, _ = sf.read(path, dtype="float32")
        saved, _ = sf.read(str(path).replace("_input.wav", "_interpretation.wav"), dtype="float32")
        explanation = interpreter.interpret_batch(torch.from_numpy(wav)[None])
        assert torch.allclose(explanation.interpretation[0], torch.from_numpy(saved), atol=1e-5)


def test_interpret_file_windows_long_inputs(exported, tmp_path):
    interpreter = Interpreter.from_hparams(str(exported["folder"]), savedir=tmp_path / "saved")
    rng = np.random.default_rng(0)
    long = (0.1 * rng.standard_normal(int(16000 * 1.3))).astype("float32")
    sf.write(tmp_path / "long.wav", long, 16000)
    result = interpreter.interpret_file(tmp_path / "long.wav")
    assert result.interpretation.shape == result.residual.shape == (len(long),)
    assert result.mask.shape[0] == interpreter.front_end.n_frames(len(long))
    assert abs(float(result.probabilities.sum()) - 1) < 1e-5
    assert set(result.faithfulness) == {"AI", "AD", "AG", "FF", "Fid-In"}
    sf.write(tmp_path / "short.wav", long[:100], 16000)
    with pytest.raises(InterpreterError, match="too short"):
        interpreter.interpret_file(tmp_path / "short.wav")


def test_offline_hub_id_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(InterpreterError, match="hub cannot be reached"):
        Interpreter.from_hparams("nobody/no-such-interpreter", savedir=tmp_path)
    assert time.monotonic() - start < 10


def _inputs_folder(trained_classifier, folder):
    """Good and bad files as people have them."""
    folder.mkdir()
    clip = sorted((trained_classifier["data"] / "test").glob("*.wav"))[0]
    shutil.copy(clip, folder / "good.wav")
    audio, rate = sf.read(clip, dtype="float32")
    stereo = np.stack([audio, 0.5 * audio], axis=1)
    resampled = np.interp(np.arange(0, len(audio), rate / 44100), np.arange(len(audio)), audio)
    sf.write(folder / "stereo44k.wav", np.stack([resampled, resampled], 1), 44100)
    sf.write(folder / "clip.ogg", stereo, rate)
    sf.write(folder / "silent.wav", np.zeros(8000, dtype="float32"), rate)
    (folder / "corrupt.wav").write_bytes(b"RIFF0000WAVEjunk")


@pytest.fixture(scope="module")
def interpreted(exported, trained_classifier, tmp_path_factory):
    """recipes/interpret.py run once on a folder of good and bad files."""
    base = tmp_path_factory.mktemp("interpret")
    _inputs_folder(trained_classifier, base / "inputs")
    result = run_recipe(
        "interpret.py",
        "--source",
        str(exported["folder"]),
        str(base / "inputs"),
        "--out",
        str(base / "out"),
        "--savedir",
        str(base / "saved"),
    )
    return {"result": result, "inputs": base / "inputs", "out": base / "out", "base": base}


def test_interpret_command_on_a_folder_with_bad_files(exported, interpreted):
    result, out = interpreted["result"], interpreted["out"]
    assert "3 file(s) explained" in result.stdout
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 2
    assert any("corrupt.wav cannot be read" in line for line in skipped)
    assert any("silent.wav is silent" in line for line in skipped)
    for name in ("good", "stereo44k", "clip"):
        for kind in ("input", "interpretation", "residual"):
            audio, rate = sf.read(out / name / f"{kind}.wav")
            assert rate == 16000 and audio.ndim == 1 and len(audio) > 0
        assert (out / name / "explanation.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert html.count("<audio") == 9 and "silent.wav is silent" in html

    unknown = run_recipe(
        "interpret.py",
        "--source",
        str(exported["folder"]),
        str(interpreted["inputs"]),
        "--out",
        str(interpreted["base"] / "out2"),
        "--target",
        "whistle",
        check=False,
    )
    assert unknown.returncode == 2 and "unknown class 'whistle'" in unknown.stderr


def test_report_opens_in_headless_chromium(interpreted, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make test` (Makefile APT_TEST_PACKAGES)"
    out = interpreted["out"]
    page = (out / "report.html").as_uri()
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile1'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    total = re.search(r'data-audio-total="(\d+)"', dom)
    loaded = re.search(r'data-audio-loaded="(\d+)"', dom)
    assert total and loaded and int(total.group(1)) == 9
    assert int(loaded.group(1)) == 9, "not every audio element loaded its file"
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            page,
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 20000
