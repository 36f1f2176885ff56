"""End to end through the real recipes: classifier and L-MAC trained, saved, reloaded, evaluated."""

import json

import pytest
import soundfile as sf
import torch
from conftest import TINY_DATA, run_recipe


def _lmac_args(trained_classifier, output, *extra):
    return [
        "hparams/lmac.yaml",
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={trained_classifier['pretrained']}",
        f"--output_folder={output}",
        "--batch_size=4",
        "--n_examples=2",
        *TINY_DATA,
        *extra,
    ]


def test_classifier_recipe_trains_checkpoints_and_exports(trained_classifier):
    out = trained_classifier["output"]
    assert list((out / "save").glob("CKPT+*/classifier.ckpt")), "no checkpoint written"
    for name in ("hyperparams.yaml", "classifier.ckpt", "label_encoder.txt"):
        assert (trained_classifier["pretrained"] / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    accuracy = metrics["spec_cnn · test"]["accuracy"]
    assert 0.0 <= accuracy <= 100.0


def test_lmac_recipe_trains_evaluates_and_resumes(trained_classifier, tmp_path):
    out = tmp_path / "lmac"
    first = run_recipe("train.py", *_lmac_args(trained_classifier, out, "--number_of_epochs=1"))
    assert "L-MAC · mixtures" in first.stdout
    checkpoints = list((out / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "decoder.ckpt").is_file()

    metrics = json.loads((out / "metrics.json").read_text())
    test_row, mix_row = metrics["L-MAC · test"], metrics["L-MAC · mixtures"]
    for key in ("AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "MM"):
        assert key in test_row and key in mix_row
    assert 0.0 <= test_row["MM"] <= 1.0
    assert "SI-SDRi" in metrics["oracle mask · mixtures"]
    # the L-MAC loss of the oracle mask beside the learnt one's, on the same mixtures
    assert all(
        "loss-in-mix" in metrics[row] for row in ("L-MAC · mixtures", "oracle mask · mixtures")
    )
    assert "loss-in-mix" not in test_row
    assert "| L-MAC · test |" in (out / "metrics.md").read_text()

    wavs = sorted((out / "examples" / "test" / "wav").glob("*_interpretation.wav"))
    assert len(wavs) == 2
    audio, rate = sf.read(wavs[0])
    assert rate == 16000 and len(audio) == 8000
    assert list((out / "examples" / "mixtures" / "png").glob("*.png"))

    # Same command again: the finished run is reused, and a second epoch resumes from epoch 1.
    run_recipe("train.py", *_lmac_args(trained_classifier, out, "--number_of_epochs=2"))
    trained = json.loads((out / "metrics.json").read_text())
    log = (out / "train_log.txt").read_text()
    epochs = [line.split(" - ")[0] for line in log.splitlines() if line.startswith("epoch:")]
    assert epochs == ["epoch: 1", "epoch: 2"]  # epoch 1 was not trained twice

    # Evaluation alone reloads the best checkpoint and gives the same table.
    again = run_recipe("evaluate.py", *_lmac_args(trained_classifier, out, "--number_of_epochs=2"))
    assert "L-MAC · test" in again.stdout
    assert json.loads((out / "metrics.json").read_text()) == trained


def test_bad_override_key_is_one_line(trained_classifier, tmp_path):
    result = run_recipe(
        "train.py", *_lmac_args(trained_classifier, tmp_path / "x", "--lamda_in=3"), check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "lamda_in" in result.stderr and "not a key" in result.stderr


def test_missing_classifier_source_is_one_line(trained_classifier, tmp_path):
    args = _lmac_args(trained_classifier, tmp_path / "x")
    args = [a for a in args if not a.startswith("--classifier_source")]
    args.append(f"--classifier_source={tmp_path / 'no_classifier'}")
    result = run_recipe("train.py", *args, check=False)
    assert result.returncode == 2
    assert "classifier_source" in result.stderr and "is not a folder" in result.stderr


def test_manifest_pointing_at_a_missing_file_names_it(trained_classifier, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(trained_classifier["data"], data)
    victim = sorted((data / "train").glob("*.wav"))[0]
    victim.unlink()
    args = _lmac_args(trained_classifier, tmp_path / "x", "--number_of_epochs=1")
    args = [a for a in args if not a.startswith("--data_folder")] + [f"--data_folder={data}"]
    result = run_recipe("train.py", *args, check=False)
    assert result.returncode == 2
    assert f"{victim.name} does not exist" in result.stderr


def test_unwritable_data_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_recipe(
        "train.py",
        "hparams/spec_cnn.yaml",
        f"--data_folder={blocker / 'synth'}",
        f"--output_folder={tmp_path / 'out'}",
        *TINY_DATA,
        check=False,
    )
    assert result.returncode == 2
    assert "not writable" in result.stderr and "data_folder" in result.stderr


@pytest.mark.parametrize(
    "yaml, extra",
    [
        ("hparams/wave_cnn.yaml", []),
        ("hparams/cnn14.yaml", ["--emb_dim=64"]),
        ("hparams/spec_cnn.yaml", ["--mix_prob=1.0"]),  # trained on mixtures, labels shared
    ],
)
def test_other_classifiers_train_and_export(trained_classifier, tmp_path, yaml, extra):
    out = tmp_path / "run"
    result = run_recipe(
        "train.py",
        yaml,
        f"--data_folder={trained_classifier['data']}",
        f"--output_folder={out}",
        "--number_of_epochs=1",
        "--batch_size=8",
        *TINY_DATA,
        *extra,
    )
    assert "· test" in result.stdout
    from interpreters.models.loading import load_classifier

    classifier = load_classifier(str(out / "pretrained"), tmp_path / "collected")
    assert len(classifier.labels) == 11
    assert classifier(torch.zeros(1, 8000)).shape == (1, 11)


def test_guided_fine_tuning_and_the_audio_quality_comparison(trained_classifier, tmp_path):
    """L-MAC fine-tuned with the clean-clip guidance through the recipe, then scored against its
    starting point by recipes/compare_quality.py (each run a quoted yaml with its overrides)."""
    base, tuned = tmp_path / "lmac", tmp_path / "tuned"
    run_recipe("train.py", *_lmac_args(trained_classifier, base, "--number_of_epochs=1"))
    run_recipe("export.py", "--run", str(base), "--out", str(tmp_path / "exported"))
    guided = ["--lambda_guide=1.0", f"--init_from={tmp_path / 'exported'}", "--number_of_epochs=1"]
    run_recipe("train.py", *_lmac_args(trained_classifier, tuned, *guided))
    report = json.loads((tuned / "init_from.json").read_text())["modules"]["decoder"]
    assert report["reinitialised"] == [] and report["loaded"]
    assert "L-MAC · mixtures" in json.loads((tuned / "metrics.json").read_text())

    def run(output, *extra):
        return " ".join(_lmac_args(trained_classifier, output, *extra))

    table = tmp_path / "quality.md"
    result = run_recipe(
        "compare_quality.py",
        run(base),
        run(tuned, "--method_name='L-MAC FT'"),
        f"--output={table}",
    )
    rows = [line.split("|")[1].strip() for line in table.read_text().splitlines()[2:]]
    assert rows == ["L-MAC", "L-MAC FT", "mixture itself"] and "L-MAC FT" in result.stdout
    twice = run_recipe("compare_quality.py", run(base), run(tuned), check=False)
    assert twice.returncode == 2
    assert twice.stderr.strip().count("\n") == 0 and "--method_name" in twice.stderr


def test_competing_masks_scores_the_decisions_mask_as_the_evaluator_does(
    trained_classifier, tmp_path
):
    """recipes/competing_masks.py on a trained L-MAC: its "as given" row is the evaluator's
    mixtures row, and every competition rule gets a row."""
    run = tmp_path / "lmac"
    run_recipe("train.py", *_lmac_args(trained_classifier, run, "--number_of_epochs=1"))
    scored = json.loads((run / "metrics.json").read_text())["L-MAC · mixtures"]
    args = _lmac_args(trained_classifier, tmp_path / "competing", f"--save_folder={run / 'save'}")
    result = run_recipe("competing_masks.py", *args)
    rows = {
        line.split("|")[1].strip(): [float(v) for v in line.split("|")[2:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| rule")
    }
    assert len(rows) == 8 and "runner-up class is the mixture's other source" in result.stdout
    for column, value in zip(["SI-SDRi", "precision", "recall", "MM"], rows["as given"]):
        assert value == pytest.approx(scored[column], abs=0.01), column
