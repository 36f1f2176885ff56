"""Multi-process training (torchrun, gloo on CPU) and surviving a SIGKILL mid-epoch."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, TINY_DATA

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def test_two_processes_train_and_write_once(trained_classifier, tmp_path):
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    result = subprocess.run(
        [
            *torchrun,
            "recipes/train.py",
            "hparams/spec_cnn.yaml",
            "--distributed_backend=gloo",
            "--device=cpu",
            f"--data_folder={trained_classifier['data']}",
            f"--output_folder={out}",
            "--number_of_epochs=2",
            "--batch_size=8",
            *TINY_DATA,
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("| spec_cnn · test |") == 1  # printed by the main process only
    epochs = [
        line
        for line in (out / "train_log.txt").read_text().splitlines()
        if line.startswith("epoch:")
    ]
    assert [line.split(" - ")[0] for line in epochs] == ["epoch: 1", "epoch: 2"]
    assert (out / "pretrained" / "classifier.ckpt").is_file()
    assert "spec_cnn · test" in json.loads((out / "metrics.json").read_text())


def test_sigkill_mid_epoch_then_resume(trained_classifier, tmp_path):
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "recipes/train.py",
        "hparams/spec_cnn.yaml",
        "--device=cpu",
        f"--data_folder={trained_classifier['data']}",
        f"--output_folder={out}",
        "--number_of_epochs=2",
        "--batch_size=1",
        "--ckpt_interval_steps=4",
        *TINY_DATA,
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((out / "save").glob("CKPT*")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    intra = [
        c
        for c in (out / "save").glob("CKPT*")
        if "end-of-epoch: false" in (c / "CKPT.yaml").read_text()
    ]
    assert intra, "no intra-epoch checkpoint was written before the kill"
    manifests = {p.name: p.read_bytes() for p in trained_classifier["data"].glob("*.json")}

    resumed = subprocess.run(
        command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "Loading a checkpoint" in resumed.stdout + resumed.stderr
    epochs = [
        line.split(" - ")[0]
        for line in (out / "train_log.txt").read_text().splitlines()
        if line.startswith("epoch:")
    ]
    assert epochs == ["epoch: 1", "epoch: 2"]
    assert (out / "pretrained" / "classifier.ckpt").is_file()
    assert manifests == {p.name: p.read_bytes() for p in trained_classifier["data"].glob("*.json")}
