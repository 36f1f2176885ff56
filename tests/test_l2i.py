"""L2I end to end: NMF dictionary learnt and exported, L2I trained on it, evaluated, reloaded."""

import json

import pytest
import speechbrain as sb
import torch
from conftest import TINY_DATA, run_recipe

from interpreters.audio import FrontEnd, load_audio
from interpreters.evaluation.run import METHOD_KEYS, load_method
from interpreters.experiment import setup
from interpreters.explainers.base import Explanation
from interpreters.explainers.nmf import NMFDictionary, load_dictionary, relative_error
from interpreters.training.recipe import build_brain

N_COMPONENTS = 8


@pytest.fixture(scope="module")
def nmf_run(trained_classifier, tmp_path_factory):
    """hparams/nmf.yaml for one epoch on the tiny data, through recipes/train.py."""
    out = tmp_path_factory.mktemp("nmf")
    run_recipe(
        "train.py",
        "hparams/nmf.yaml",
        f"--data_folder={trained_classifier['data']}",
        f"--output_folder={out}",
        f"--n_components={N_COMPONENTS}",
        "--number_of_epochs=1",
        "--batch_size=4",
        *TINY_DATA,
    )
    return out


def _l2i_args(trained_classifier, nmf_run, output):
    return [
        "hparams/l2i.yaml",
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={trained_classifier['pretrained']}",
        f"--nmf_source={nmf_run / 'pretrained'}",
        f"--output_folder={output}",
        "--number_of_epochs=1",
        "--batch_size=4",
        "--n_examples=2",
        *TINY_DATA,
    ]


@pytest.fixture(scope="module")
def l2i_run(trained_classifier, nmf_run, tmp_path_factory):
    """hparams/l2i.yaml for one epoch on the tiny data and the tiny dictionary."""
    out = tmp_path_factory.mktemp("l2i")
    args = _l2i_args(trained_classifier, nmf_run, out)
    return {"out": out, "args": args, "stdout": run_recipe("train.py", *args).stdout}


def _spectrograms(trained_classifier) -> torch.Tensor:
    front_end = FrontEnd(16000, n_fft=512, hop_length=256)
    wavs = sorted((trained_classifier["data"] / "train").glob("*.wav"))
    return front_end.analyse(torch.stack([load_audio(w, 16000) for w in wavs])).compressed


def test_nmf_recipe_exports_a_nonnegative_unit_norm_dictionary(nmf_run):
    dictionary = load_dictionary(str(nmf_run / "pretrained"), nmf_run / "reload")
    W = dictionary.W
    assert W.shape == (257, N_COMPONENTS) and (W >= 0).all()
    assert torch.allclose(W.norm(dim=0), torch.ones(N_COMPONENTS), atol=1e-4)
    assert not torch.allclose(W, NMFDictionary(257, N_COMPONENTS, seed=1234).W)  # it learnt
    assert (nmf_run / "components.png").stat().st_size > 0
    assert list((nmf_run / "save").glob("CKPT+*/nmf.ckpt"))
    error = json.loads((nmf_run / "metrics.json").read_text())["NMF · test"]["relative error %"]
    assert 0.0 < error < 100.0


def test_nmf_updates_keep_w_nonnegative_and_lower_the_error(trained_classifier):
    spectrograms = _spectrograms(trained_classifier)
    dictionary = NMFDictionary(spectrograms.shape[-1], N_COMPONENTS, seed=0)

    def error() -> float:
        H = dictionary.activations(spectrograms, n_iter=30)
        return float(relative_error(spectrograms, dictionary.reconstruct(H)).mean())

    errors = [error()]
    for _ in range(4):
        dictionary.update(spectrograms, dictionary.activations(spectrograms, n_iter=30))
        errors.append(error())
        assert (dictionary.W >= 0).all()
    assert errors[-1] < 0.8 * errors[0], errors


def test_l2i_recipe_reports_fidelity_and_every_shared_metric(l2i_run):
    out = l2i_run["out"]
    assert "L2I · mixtures" in l2i_run["stdout"]
    checkpoints = list((out / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1
    assert {"psi.ckpt", "theta.ckpt"} <= {p.name for p in checkpoints[0].iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    for row in (metrics["L2I · test"], metrics["L2I · mixtures"]):
        for key in ("AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "MM", "kept comps"):
            assert key in row
        assert 0.0 <= row["Θ top-1"] <= row["Θ top-3"] <= 100.0
        assert 0.0 <= row["MM"] <= 1.0
    assert "SI-SDRi" in metrics["oracle mask · mixtures"]
    header = (out / "metrics.md").read_text().splitlines()[0]
    assert "Θ top-1" in header and "Θ top-3" in header

    wav_folder = out / "examples" / "test" / "wav"
    for interpretation in sorted(wav_folder.glob("*_interpretation.wav")):
        prefix = interpretation.name.removesuffix("_interpretation.wav")
        assert len(list(wav_folder.glob(f"{prefix}_component*.wav"))) == 3

    again = run_recipe("evaluate.py", *l2i_run["args"])
    assert "L2I · test" in again.stdout
    assert json.loads((out / "metrics.json").read_text()) == metrics


@pytest.fixture(scope="module")
def explainer_and_mixtures(l2i_run):
    """The trained L2I explainer rebuilt from its yaml in-process, and one batch of mixtures."""
    run = load_method(l2i_run["args"])
    mixtures = run.experiment.datasets["mixtures"]
    batch = sb.dataio.batch.PaddedBatch([mixtures[i] for i in range(len(mixtures))])
    return run.explainer, batch


@pytest.mark.parametrize("which", [0, 1])
def test_l2i_explains_the_class_it_is_asked_about(explainer_and_mixtures, which):
    explainer, batch = explainer_and_mixtures
    target = batch.stem_labels.data[:, which]
    with torch.no_grad():
        explanation = explainer.explain(batch.sig.data, target=target)
    extras = explanation.extras
    batch_size, n_frames = len(target), explainer.front_end.n_frames(batch.sig.data.shape[1])
    assert torch.equal(explanation.target, target)
    assert explanation.mask.shape == (batch_size, n_frames, explainer.front_end.n_freqs)
    assert 0 <= explanation.mask.min() and explanation.mask.max() <= 1
    assert extras["activations"].shape == (batch_size, N_COMPONENTS, n_frames)
    assert (extras["activations"] >= 0).all()
    # Relevance follows the asked class: z_j·θ_{c,j} normalised by its largest term.
    contribution = extras["pooled"] * explainer.theta.linear.weight[target]
    largest = contribution.amax(-1, keepdim=True).clamp_min(1e-8)
    assert torch.allclose(extras["relevance"] * largest, contribution, atol=1e-6)
    assert torch.equal(
        extras["selected"], (extras["relevance"] > explainer.relevance_threshold).float()
    )


def test_component_masks_of_a_partition_add_up(explainer_and_mixtures):
    explainer, batch = explainer_and_mixtures
    with torch.no_grad():
        activations = explainer.explain(batch.sig.data).extras["activations"]
    split = (torch.arange(N_COMPONENTS) % 2).float().expand(len(activations), -1)
    parts = explainer.component_masks(activations, split) + explainer.component_masks(
        activations, 1 - split
    )
    whole = explainer.component_masks(activations, torch.ones_like(split))
    assert torch.allclose(parts, whole, atol=1e-4)


def test_fidelity_is_scored_against_the_classifier_decision(explainer_and_mixtures):
    explainer, _ = explainer_and_mixtures
    n_classes = len(explainer.classifier.labels)
    logits = torch.eye(4, n_classes)  # decisions 0, 1, 2, 3
    theta_logits = torch.zeros(4, n_classes)
    theta_logits[0, 0] = 3.0  # top-1 right
    theta_logits[1, [5, 1]] = torch.tensor([3.0, 2.0])  # right only within the top 3
    theta_logits[2, [5, 6, 7]] = 3.0  # wrong
    theta_logits[3, 3], theta_logits[3, 4] = 2.0, 3.0  # right within the top 3
    extras = {
        "theta_logits": theta_logits,
        "selected": torch.ones(4, N_COMPONENTS),
        "relative_error": torch.zeros(4),
    }
    explanation = Explanation(torch.zeros(4, 2, 2), None, None, logits, logits.argmax(-1), extras)
    values = explainer.method_metrics(explanation)
    assert values["Θ top-1"].tolist() == [100.0, 0.0, 0.0, 0.0]
    assert values["Θ top-3"].tolist() == [100.0, 100.0, 0.0, 100.0]


def test_faithfulness_term_trains_psi_through_the_interpretation(l2i_run, explainer_and_mixtures):
    _, batch = explainer_and_mixtures
    grads = {}
    for weight in (0.0, 1.0):
        experiment = setup([*l2i_run["args"], f"--lambda_faith={weight}"], METHOD_KEYS)
        brain = build_brain(experiment)
        torch.manual_seed(0)
        loss = brain.compute_objectives(
            brain.compute_forward(batch, sb.Stage.TRAIN), batch, sb.Stage.TRAIN
        )
        loss.backward()
        grads[weight] = torch.cat([p.grad.flatten() for p in brain.modules.psi.parameters()])
    assert torch.isfinite(grads[1.0]).all()
    assert not torch.allclose(grads[0.0], grads[1.0])  # the classifier's view reaches Ψ


def test_export_ships_the_dictionary_and_reloads_without_it(l2i_run, nmf_run, tmp_path):
    import shutil

    from interpreters.inference import Interpreter

    exported = tmp_path / "exported"
    run_recipe("export.py", "--run", str(l2i_run["out"]), "--out", str(exported))
    assert (exported / "nmf_source" / "nmf.ckpt").is_file()
    wav_folder = l2i_run["out"] / "examples" / "test" / "wav"
    source = sorted(wav_folder.glob("*_input.wav"))[0]
    saved = load_audio(str(source).replace("_input.wav", "_interpretation.wav"), 16000)
    hidden = tmp_path / "nmf_moved_away"
    shutil.move(nmf_run / "pretrained", hidden)  # the export must not need the training folder
    try:
        interpreter = Interpreter.from_hparams(str(exported), savedir=tmp_path / "saved")
        explanation = interpreter.interpret_batch(load_audio(source, 16000)[None])
    finally:
        shutil.move(hidden, nmf_run / "pretrained")
    assert torch.allclose(explanation.interpretation[0], saved, atol=1e-5)
