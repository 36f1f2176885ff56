"""Attribution baselines under explain(), the similarity metrics of the sanity check, the
model-randomisation cascade, and the comparison through recipes/evaluate.py."""

import json
from pathlib import Path

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency
from conftest import TINY_DATA, run_recipe
from speechbrain.dataio.batch import PaddedBatch

from interpreters.audio import FrontEnd
from interpreters.evaluation import metrics
from interpreters.evaluation.comparison import layer_groups, randomised_cascade, sanity_check
from interpreters.explainers.attribution import (
    Attribution,
    CaptumAttribution,
    GradCAM,
    relevance_mask,
)
from interpreters.explainers.base import Explanation
from interpreters.explainers.lrp import LRP, make_composite
from interpreters.models.base import to_grid
from interpreters.models.spectrogram_cnn import SpectrogramCNN
from interpreters.models.waveform_cnn import WaveformCNN

LABELS = ["a", "b", "c"]
FRONT_END = FrontEnd(16000, n_fft=256, hop_length=128)
METHODS = {
    "saliency": lambda c: CaptumAttribution(c, FRONT_END, Saliency, {"abs": True}),
    "integrated_gradients": lambda c: CaptumAttribution(
        c, FRONT_END, IntegratedGradients, {"n_steps": 4}
    ),
    "smoothgrad": lambda c: CaptumAttribution(
        c,
        FRONT_END,
        Saliency,
        {"abs": True},
        {"nt_type": "smoothgrad", "nt_samples": 3, "relative_stdev": 0.1},
    ),
    "gradcam": lambda c: GradCAM(c, FRONT_END, "blocks.1"),
    "lrp": lambda c: LRP(c, FRONT_END, make_composite("epsilon_plus", "epsilon")),
}


def spectrogram_classifier():
    torch.manual_seed(0)
    return SpectrogramCNN(LABELS, n_fft=256, hop_length=128, channels=[4, 8]).eval()


# ---- similarity metrics: hand-computed values ----------------------------------------------


def test_spearman_hand_values():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 5.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0], [1.0, 2.0, 3.0, 3.5]])
    # row 0: 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/60 = 0.8; row 1: the tie shares rank 0.5, so
    # ranks (0.5, 0.5, 2, 3) vs (0, 1, 2, 3): covariance 4.5, variances 4.5 and 5 → √(4.5/5)
    expected = torch.tensor([0.8, (4.5 / 5) ** 0.5])
    torch.testing.assert_close(metrics.spearman_correlation(a, b), expected)
    assert metrics.spearman_correlation(a, torch.ones_like(a)).tolist() == [0.0, 0.0]
    torch.testing.assert_close(metrics.spearman_correlation(a, -a), torch.tensor([-1.0, -1.0]))


def test_ssim_hand_values():
    a, b = torch.full((1, 8, 8), 0.2, dtype=torch.float64), torch.full((1, 8, 8), 0.6).double()
    # constant maps: σ = 0, so SSIM = (2·0.2·0.6 + C1) / (0.2² + 0.6² + C1), C1 = 1e-4
    torch.testing.assert_close(
        metrics.structural_similarity(a, b), torch.tensor([0.2401 / 0.4001], dtype=torch.float64)
    )
    x = torch.rand(2, 9, 10)
    torch.testing.assert_close(metrics.structural_similarity(x, x), torch.ones(2))
    assert (metrics.structural_similarity(x, 1 - x) < 0.5).all()
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.structural_similarity(torch.rand(1, 4, 4), torch.rand(1, 4, 4))


# ---- relevance -> mask ------------------------------------------------------------------------


def test_relevance_mask_and_grid():
    relevance = torch.tensor([[[-1.0, 2.0], [4.0, 0.0]], [[0.0, 0.0], [0.0, -3.0]]])
    mask = relevance_mask(relevance)
    assert mask.tolist() == [[[0.0, 0.5], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]
    sequence = torch.tensor([[[[0.0], [1.0]]]])  # [B, 1, T', 1] from a 1D layer
    grid = to_grid(sequence, frames=4, freqs=3)[:, 0]
    assert grid.shape == (1, 4, 3) and torch.equal(grid[:, :, 0], grid[:, :, 2])
    assert grid[0, 0, 0] < grid[0, -1, 0]


# ---- every baseline through explain() and the metrics -------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("kind", ["spectrogram", "waveform"])
def test_baseline_explains_and_is_scored(method, kind):
    if kind == "spectrogram":
        classifier = spectrogram_classifier()
    else:
        torch.manual_seed(0)
        classifier = WaveformCNN(LABELS, channels=[4, 4, 8], first_kernel=16, pool=2).eval()
    explainer = METHODS[method](classifier)
    torch.manual_seed(1)
    wavs = 0.1 * torch.randn(2, 4000)
    with torch.no_grad():  # as in evaluation: explain() must switch gradients on
        explanation = explainer.explain(wavs)
        other = explainer.explain(wavs, target=(explanation.target + 1) % len(LABELS))
    assert isinstance(explanation, Explanation)
    frames, freqs = FRONT_END.n_frames(4000), FRONT_END.n_freqs
    assert explanation.mask.shape == (2, frames, freqs)
    assert explanation.mask.min() >= 0
    peaks = explanation.mask.flatten(1).amax(1)  # 1, or 0 where no relevance is positive
    assert ((peaks - 1).abs() < 1e-6).logical_or(peaks == 0).all()
    assert explanation.interpretation.shape == wavs.shape == explanation.residual.shape
    relevance, other_relevance = explanation.extras["relevance"], other.extras["relevance"]
    assert not torch.allclose(relevance, other_relevance)  # it explains the asked class
    with torch.no_grad():
        scores = metrics.faithfulness(
            explanation.probabilities,
            classifier(explanation.interpretation).softmax(-1),
            classifier(explanation.residual).softmax(-1),
            explanation.target,
        )
    assert all(torch.isfinite(v).all() for v in scores.values())


def test_a_spectrogram_classifiers_relevance_is_taken_on_its_own_features():
    """Saliency of the spectrogram CNN is |∂ logit / ∂ features| itself, not a gradient through
    a resynthesis (its FrontEnd, a submodule, must be seen as its feature front end)."""
    classifier = spectrogram_classifier()
    torch.manual_seed(1)
    wavs = 0.1 * torch.randn(2, 4000)
    explanation = METHODS["saliency"](classifier).explain(wavs)
    features = classifier.features(wavs).detach().requires_grad_(True)
    logits = classifier.classify(features)[0]
    score = logits.gather(1, explanation.target[:, None]).sum()
    (grad,) = torch.autograd.grad(score, features)
    torch.testing.assert_close(explanation.extras["relevance"], grad.abs()[:, 0])


# ---- model-randomisation sanity check ------------------------------------------------------


def test_cascade_reinitialises_from_the_top():
    classifier = spectrogram_classifier()
    names = [name for name, _ in layer_groups(classifier)]
    assert names == ["blocks.0", "blocks.1", "head"]
    steps = []
    for name, model in randomised_cascade(classifier, seed=0):
        changed = [
            n
            for (n, original), (_, now) in zip(layer_groups(classifier), layer_groups(model))
            if not all(torch.equal(p, q) for p, q in zip(original.parameters(), now.parameters()))
        ]
        steps.append((name, changed))
    assert steps == [
        ("head", ["head"]),
        ("blocks.1", ["blocks.1", "head"]),
        ("blocks.0", ["blocks.0", "blocks.1", "head"]),
    ]


class InputEnergy(Attribution):
    """A 'method' that ignores the model: the mask is the input's own spectrogram."""

    def relevance(self, evidence):
        return evidence.spectrum.compressed


def test_sanity_check_fails_a_model_independent_explanation():
    classifier = spectrogram_classifier()
    torch.manual_seed(2)
    batch = PaddedBatch([{"sig": 0.1 * torch.randn(4000)} for _ in range(3)])
    explainer = InputEnergy(classifier, FRONT_END)
    blind = sanity_check(explainer, batch, seed=0)
    assert list(blind) == ["head", "blocks.1", "blocks.0"]
    assert all(abs(step["spearman"] - 1) < 1e-6 for step in blind.values())
    assert explainer.classifier is classifier  # the check explained copies, not this one
    from interpreters.explainers.trivial import KeepAll

    keep_all = sanity_check(KeepAll(classifier, FRONT_END), batch, seed=0)
    assert all(step["spearman"] == 1 for step in keep_all.values())  # constant, unchanged
    lrp = sanity_check(METHODS["lrp"](classifier), batch, seed=0)
    assert lrp["blocks.0"]["spearman"] < 0.9


# ---- through the recipes --------------------------------------------------------------------


def test_comparison_through_evaluate_recipe(trained_classifier, tmp_path):
    out = tmp_path / "compare"
    methods = (
        "[{hparams: hparams/baselines.yaml, overrides: {method: lrp_epsilon_plus, "
        f"output_folder: {out}/lrp}}}}, "
        "{hparams: hparams/no_such_method.yaml}]"
    )
    result = run_recipe(
        "evaluate.py",
        "hparams/compare_methods.yaml",
        f"--output_folder={out}",
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={trained_classifier['pretrained']}",
        f"--method_list={{methods: {methods}}}",
        "--batch_size=8",
        "--n_examples=1",
        "--timing_clips=4",
        "--sanity_clips=2",
        *TINY_DATA,
    )
    assert "| LRP ε-z⁺ · mixtures |" in result.stdout
    record = json.loads((out / "comparison.json").read_text())
    for row in ("LRP ε-z⁺ · test", "LRP ε-z⁺ · mixtures", "oracle mask · mixtures"):
        assert row in record["metrics"]
    assert record["metrics"]["LRP ε-z⁺ · test"]["s/clip"] > 0
    assert "SI-SDRi" in record["metrics"]["LRP ε-z⁺ · mixtures"]
    assert set(record["verdicts"]) == {"LRP ε-z⁺"}
    assert list(record["sanity"]["LRP ε-z⁺"]) == [
        "head",
        "blocks.3",
        "blocks.2",
        "blocks.1",
        "blocks.0",
    ]
    assert record["skipped"] == {"hparams/no_such_method.yaml": "yaml not present"}
    # Each method also wrote its own evaluation with listenable examples.
    assert list((out / "lrp" / "examples" / "mixtures" / "wav").glob("*_interpretation.wav"))


def test_instruments_comparison_overrides_the_comparison_with_its_own_method_list():
    """hparams/compare_instruments.yaml is a comparison (an override file of compare_methods.yaml)
    on the instruments data whose every method yaml exists and writes under its folder."""
    from interpreters.evaluation.comparison import COMPARISON_KEYS, load_settings, method_entries
    from interpreters.evaluation.run import is_comparison

    path = "hparams/compare_instruments.yaml"
    assert is_comparison([path])
    hparams_file, settings, _ = load_settings([path], COMPARISON_KEYS)
    assert (settings["dataset"], settings["sanity_threshold"]) == ("instruments", 0.5)
    entries = list(method_entries(settings, "cpu", hparams_file))
    labels = [label for label, _ in entries]
    assert labels[:2] == ["L-MAC (twin 1)", "L-MAC (cover 1)"]
    assert labels[-2:] == ["LMAC-TD", "LMAC-TD (cover 1)"] and len(labels) == 13
    for _, argv in entries:
        assert Path(argv[0]).is_file() and "--dataset=instruments" in argv
        assert "--output_folder=results/compare_wide_instruments/" in " ".join(argv)


def test_method_list_names_rows_and_refuses_two_entries_of_one_name():
    from interpreters.errors import InterpreterError
    from interpreters.evaluation.comparison import labelled, method_entries

    rows = {"LMAC-TD · test": {"AD": 1.0}, "oracle mask · mixtures": {"AD": 0.4}}
    assert labelled(rows, "LMAC-TD (unconditioned)") == {
        "LMAC-TD (unconditioned) · test": {"AD": 1.0},
        "oracle mask · mixtures": {"AD": 0.4},
    }
    assert labelled(rows, None) is rows
    entry = {"name": "LMAC-TD", "hparams": "hparams/lmac_td.yaml"}
    settings = {"method_list": {"methods": [entry, dict(entry)]}, "shared_overrides": {}}
    with pytest.raises(InterpreterError, match="two methods are named 'LMAC-TD'"):
        method_entries(settings, "cpu", "compare.yaml")
