"""Shared fixtures: offline hub, tiny synth data, and a helper to run recipes as a user would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import interpreters  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]

# Overrides that shrink the embedded dataset so a whole recipe runs in seconds.
TINY_DATA = [
    "--n_train_per_class=4",
    "--n_valid_per_class=2",
    "--n_test_per_class=2",
    "--n_mixtures=6",
    "--duration=0.5",
]


def lmac_brain(explainer, output_folder, **overrides):
    """An LMACBrain on ``explainer`` with hparams/lmac.yaml's loss and mixing defaults (no
    examples, no evaluation sets), ``overrides`` on top."""
    from interpreters.training.lmac import LMACBrain

    hparams = {
        "explainer": explainer,
        "output_folder": str(output_folder),
        "n_examples": 0,
        "eval_sets": [],
        **dict(lambda_in=4.0, lambda_out=0.2, lambda_reg=0.4, lambda_tv=0.0, lambda_gain=0.0),
        **dict(
            lambda_excl=1.0,
            lambda_cover=0.0,
            lambda_twin=0.0,
            lambda_guide=0.0,
            guide="loud",
            guide_threshold=0.35,
        ),
        "guide_weight": "uniform",
        "in_term": "confidence",
        **dict(mix_prob=1.0, snr_range=[-5.0, 5.0], two_targets=True, disjoint_pairs=True),
        "correct_pairs_only": False,
        **dict(mix_valid=False, seed=0),
        **overrides,
    }
    modules = {"decoder": explainer.decoder}
    return LMACBrain(modules=modules, hparams=hparams, run_opts={"device": "cpu"})


def run_recipe(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run recipes/<script> in a subprocess from the project root, as a user would."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    device = [] if script == "export.py" else ["--device=cpu"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / script), *args, *device],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory):
    """A spectrogram CNN trained for one epoch on tiny synth data through recipes/train.py."""
    base = tmp_path_factory.mktemp("classifier")
    data = base / "data"
    out = base / "spec_cnn"
    run_recipe(
        "train.py",
        "hparams/spec_cnn.yaml",
        f"--data_folder={data}",
        f"--output_folder={out}",
        "--number_of_epochs=1",
        "--batch_size=8",
        *TINY_DATA,
    )
    return {"data": data, "output": out, "pretrained": out / "pretrained"}


@pytest.fixture(scope="session")
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
