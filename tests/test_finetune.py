"""Fine-tuning: an interpreter started from a pretrained one, on another classifier and data."""

import json

import pytest
import torch
import torch.nn as nn
from conftest import TINY_DATA, run_recipe
from test_datasets import _own_folder

from interpreters.errors import InterpreterError
from interpreters.training.finetune import initialise_from, transfer_state


def test_transfer_state_loads_what_fits_and_reports_the_rest():
    source = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    target = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 5))  # another class count
    report = transfer_state(target, source.state_dict())
    assert report["loaded"] == ["0.bias", "0.weight"]
    assert report["reinitialised"] == ["1.bias [5] (source [3])", "1.weight [5, 8] (source [3, 8])"]
    assert torch.equal(target[0].weight, source[0].weight)
    assert not torch.equal(target[1].weight[:3], source[1].weight)


def test_init_from_a_folder_that_is_not_an_interpreter_is_one_line(tmp_path):
    with pytest.raises(InterpreterError, match="not an exported interpreter"):
        initialise_from({"decoder": nn.Linear(2, 2)}, str(tmp_path), tmp_path / "save")


def test_own_data_fine_tuned_from_pretrained_classifier_and_interpreter(
    trained_classifier, tmp_path
):
    """The user's story: a classifier and an L-MAC pretrained on synth, both fine-tuned on the
    user's own folder of two classes; what fits is loaded, the rest re-initialised, reported."""
    first = tmp_path / "lmac"
    run_recipe(
        "train.py",
        "hparams/lmac.yaml",
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={trained_classifier['pretrained']}",
        f"--output_folder={first}",
        "--number_of_epochs=1",
        "--batch_size=4",
        "--n_examples=1",
        *TINY_DATA,
    )
    run_recipe("export.py", "--run", str(first), "--out", str(tmp_path / "pretrained_lmac"))

    own = [
        "--dataset=folder",
        f"--data_folder={_own_folder(tmp_path / 'mine', per_class=5)}",
        f"--prepared_folder={tmp_path / 'prepared'}",
        "--duration=0.5",
        "--n_mixtures=4",
        "--batch_size=4",
    ]
    classifier = tmp_path / "classifier"
    run_recipe(
        "train.py",
        "hparams/spec_cnn.yaml",
        f"--output_folder={classifier}",
        f"--init_from={trained_classifier['pretrained']}",
        "--number_of_epochs=1",
        *own,
    )
    report = json.loads((classifier / "init_from.json").read_text())["modules"]["classifier"]
    assert any(name.startswith("blocks.") for name in report["loaded"])
    assert report["reinitialised"] == [
        "head.1.bias [2] (source [11])",
        "head.1.weight [2, 128] (source [11, 128])",
    ]

    tuned = tmp_path / "tuned"
    command = [
        "hparams/lmac.yaml",
        f"--classifier_source={classifier / 'pretrained'}",
        f"--output_folder={tuned}",
        f"--init_from={tmp_path / 'pretrained_lmac'}",
        "--n_examples=1",
        *own,
    ]
    result = run_recipe("train.py", *command, "--number_of_epochs=1")
    assert "L-MAC · test" in result.stdout and "L-MAC · mixtures" in result.stdout
    mixtures = json.loads((tmp_path / "prepared" / "ood" / "mixtures.json").read_text())
    assert {e["label1"] for e in mixtures.values()} <= {"bird", "engine"}
    report = json.loads((tuned / "init_from.json").read_text())["modules"]["decoder"]
    assert report["reinitialised"] == [] and len(report["loaded"]) > 10
    assert list((tuned / "save").glob("CKPT+*/decoder.ckpt"))

    # Re-running resumes from the run's own checkpoint rather than the pretrained source.
    (tuned / "init_from.json").unlink()
    run_recipe("train.py", *command, "--number_of_epochs=2")
    assert not (tuned / "init_from.json").exists()
    log = (tuned / "train_log.txt").read_text().splitlines()
    assert [line.split(" - ")[0] for line in log if line.startswith("epoch")] == [
        "epoch: 1",
        "epoch: 2",
    ]
