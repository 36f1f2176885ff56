"""Yaml loading: the shared data section through !include, override files of a base yaml,
one-line errors for unknown keys, and yaml (and exports) written by earlier versions."""

from pathlib import Path

import pytest
import torch

from interpreters.config import included_files, load_yaml, modern_names
from interpreters.errors import InterpreterError

ROOT = Path(__file__).resolve().parents[1]
LEGACY_EXPORT = ROOT / "tests" / "fixtures" / "legacy_lmac_export"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def recipe(tmp_path):
    write(
        tmp_path,
        "section.yaml",
        "dataset: synth\nrate: 16000\nfolder: !ref data/<dataset>_<rate>\nsplits: [train]\n",
    )
    return write(
        tmp_path,
        "recipe.yaml",
        "data: !include:section.yaml\n"
        "    splits: [train, test]\n"
        "name: !ref run_<data[dataset]>\n"
        "epochs: 2\n",
    )


def test_include_values_and_their_defaults(recipe):
    hparams = load_yaml(recipe)
    assert hparams["data"] == {
        "dataset": "synth",
        "rate": 16000,
        "folder": "data/synth_16000",
        "splits": ["train", "test"],
    }
    assert hparams["name"] == "run_synth"


def test_overrides_of_included_keys_are_routed_into_the_include(recipe):
    hparams = load_yaml(recipe, {"dataset": "esc50", "epochs": 5, "splits": ["valid"]})
    assert hparams["data"]["dataset"] == "esc50" and hparams["data"]["folder"] == "data/esc50_16000"
    assert hparams["data"]["splits"] == ["valid"]  # the command line wins over the include's
    assert hparams["name"] == "run_esc50" and hparams["epochs"] == 5
    # SpeechBrain hands overrides over as yaml text
    assert load_yaml(recipe, "rate: 8000")["data"]["folder"] == "data/synth_8000"


def test_an_unknown_key_is_one_line_naming_the_file(recipe):
    with pytest.raises(InterpreterError, match=r"recipe.yaml: 'epoch' is not a key.*epochs"):
        load_yaml(recipe, {"epoch": 3})
    with pytest.raises(InterpreterError, match="does not exist"):
        load_yaml(recipe.parent / "missing.yaml")


def test_a_whole_section_can_replace_the_include(recipe):
    hparams = load_yaml(recipe, {"data": {"dataset": "mine"}})
    assert hparams["data"] == {"dataset": "mine"}


def test_override_file_of_a_base_yaml(recipe, tmp_path):
    paper = write(tmp_path, "paper.yaml", "base_hparams: recipe.yaml\nepochs: 200\nrate: 44100\n")
    hparams = load_yaml(paper)
    assert hparams["epochs"] == 200 and hparams["data"]["folder"] == "data/synth_44100"
    assert load_yaml(paper, {"epochs": 3})["epochs"] == 3  # the command line still wins
    assert set(included_files(paper)) == {tmp_path / "recipe.yaml", tmp_path / "section.yaml"}


def test_every_recipe_yaml_shares_the_data_section():
    for name in ["lmac", "l2i", "lmac_td", "lmac_zs", "baselines", "spec_cnn", "nmf", "clap"]:
        text = (ROOT / "hparams" / f"{name}.yaml").read_text()
        assert "data: !include:data.yaml" in text and "prepare_dataset" not in text, name


def test_old_dotted_names_are_translated():
    old = "brain_class: !name:interpreters.methods.lmac.LMAC\n"
    old += "x: !new:interpreters.classifiers.x.Y\n"
    new = modern_names(old)
    assert "interpreters.training.lmac.LMACBrain" in new and "interpreters.models.x.Y" in new


def test_an_export_made_before_explainers_loads_and_explains_alike(tmp_path):
    from interpreters.inference import Interpreter

    interpreter = Interpreter.from_hparams(str(LEGACY_EXPORT), savedir=tmp_path / "saved")
    # reference.pt was written by commit 4b5a26a on 8192 samples: a whole number of hops, where
    # that front end and today's hop-padded one see the same frames
    reference = torch.load(LEGACY_EXPORT / "reference.pt", weights_only=True)
    explanation = interpreter.interpret_batch(reference["wav"])
    assert interpreter.explainer.name == "L-MAC"
    torch.testing.assert_close(explanation.mask, reference["mask"], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        explanation.interpretation, reference["interpretation"], atol=1e-6, rtol=0
    )
