"""The Explainer contract in-process: explain(), honest targets, the Evaluator's ground truth,
and the training Brain's loss on an explainer's modules."""

import pytest
import torch
from conftest import lmac_brain
from speechbrain.dataio.batch import PaddedBatch

from interpreters.audio import FrontEnd
from interpreters.data.dataio import build_datasets
from interpreters.data.synth import CLASSES, prepare_synth
from interpreters.errors import InterpreterError
from interpreters.evaluation.evaluator import Evaluator
from interpreters.explainers.attribution import GradCAM
from interpreters.explainers.base import Explanation
from interpreters.explainers.lmac import (
    LMAC,
    ConditionedMaskDecoder,
    MaskDecoder,
    UnconditionedLMAC,
)
from interpreters.models.spectrogram_cnn import SpectrogramCNN


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    manifests = prepare_synth(str(folder), 1, 1, 1, 4, duration=0.5)
    labels = list(CLASSES)
    datasets = build_datasets(manifests, str(folder), labels, 16000)
    torch.manual_seed(0)
    classifier = SpectrogramCNN(labels, n_fft=256, hop_length=128, channels=[4, 8]).eval()
    front_end = FrontEnd(16000, n_fft=256, hop_length=128)
    decoder = MaskDecoder(classifier.hidden_channels, layers=[0, 1], channels=4)
    lmac = UnconditionedLMAC(classifier, front_end, decoder)
    conditioned = LMAC(classifier, front_end, ConditionedMaskDecoder(classifier.hidden_channels))
    gradcam = GradCAM(classifier, front_end, layer="blocks.1")
    return {
        "lmac": lmac,
        "conditioned": conditioned,
        "gradcam": gradcam,
        "datasets": datasets,
        "folder": folder,
    }


def _batch(dataset):
    return PaddedBatch([dataset[i] for i in range(len(dataset))])


@pytest.mark.parametrize("name", ["lmac", "conditioned"])
def test_explain_contract(setup, name):
    explainer = setup[name]
    wavs, lens = _batch(setup["datasets"]["test"]).sig
    explanation = explainer.explain(wavs, lens)
    assert isinstance(explanation, Explanation)
    frames, freqs = explainer.front_end.n_frames(wavs.shape[1]), explainer.front_end.n_freqs
    assert explanation.mask.shape == (len(wavs), frames, freqs)
    assert 0 <= explanation.mask.min() and explanation.mask.max() <= 1
    assert explanation.interpretation.shape == wavs.shape == explanation.residual.shape
    assert torch.equal(explanation.target, explanation.logits.argmax(-1))
    assert explanation.spectrum.compressed.shape == (len(wavs), frames, freqs)


def test_targets_by_name_index_and_unknown(setup):
    explainer = setup["gradcam"]  # class-conditioned: any class can be explained
    wavs, lens = _batch(setup["datasets"]["test"]).sig
    named = explainer.explain(wavs, lens, target="tweet")
    assert named.target.tolist() == [CLASSES.index("tweet")] * len(wavs)
    assert explainer.explain(wavs, lens, target=3).target.tolist() == [3] * len(wavs)
    assert explainer.explain(wavs, lens, target="3").target.tolist() == [3] * len(wavs)
    with pytest.raises(InterpreterError, match="unknown class 'whistle'"):
        explainer.explain(wavs, lens, target="whistle")
    with pytest.raises(InterpreterError, match="out of range"):
        explainer.explain(wavs, lens, target=99)


@pytest.mark.parametrize("name", ["gradcam", "conditioned"])
def test_target_changes_a_conditioned_mask(setup, name):
    explainer = setup[name]
    wavs, lens = _batch(setup["datasets"]["test"]).sig
    first = explainer.explain(wavs, lens, target=0).mask
    other = explainer.explain(wavs, lens, target=5).mask
    assert not torch.allclose(first, other)


def test_unconditioned_explainer_refuses_another_class(setup):
    explainer = setup["lmac"]
    wavs, lens = _batch(setup["datasets"]["test"]).sig
    decision = explainer.explain(wavs, lens).target
    assert torch.equal(explainer.explain(wavs, lens, target=decision).target, decision)
    other = (decision + 1) % len(CLASSES)
    with pytest.raises(InterpreterError, match="not conditioned on the class"):
        explainer.explain(wavs, lens, target=other)


def test_with_classifier_leaves_the_original_untouched(setup):
    explainer = setup["lmac"]
    copy = SpectrogramCNN(list(CLASSES), n_fft=256, hop_length=128, channels=[4, 8])
    other = explainer.with_classifier(copy)
    assert other.classifier is copy and explainer.classifier is not copy
    assert other.decoder is explainer.decoder


def test_brain_loss_is_finite_and_trains_the_decoder(setup):
    explainer = setup["lmac"]
    brain = lmac_brain(
        explainer,
        setup["folder"] / "run",
        eval_sets=["test"],
        lambda_tv=0.1,
        lambda_excl=0.0,
        mix_prob=0.0,
        two_targets=False,
        disjoint_pairs=False,
    )
    batch = _batch(setup["datasets"]["train"])
    explanation, heard = brain.compute_forward(batch, stage=None)
    loss = brain.loss(explanation, *heard)
    loss.backward()
    grads = [p.grad for p in explainer.decoder.parameters()]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in explainer.classifier.parameters())
    explainer.decoder.zero_grad()


@pytest.mark.parametrize("which", [0, 1])
def test_ground_truth_scores_the_stem_of_the_explained_class(setup, which):
    explainer = setup["gradcam"]
    batch = _batch(setup["datasets"]["mixtures"])
    stems = [batch.stem1_sig.data, batch.stem2_sig.data]
    target = batch.stem_labels.data[:, which]
    explanation = explainer.explain(batch.sig.data, batch.sig.lengths, target=target)
    # An interpretation equal to the explained class' stem is a perfect separation.
    explanation.interpretation = stems[which]
    values, oracle = Evaluator(setup["folder"]).ground_truth(explainer, explanation, batch)
    assert (values["SI-SDR"] > 60).all()
    assert (values["SI-SDRi"] > 50).all()
    assert (values["in-mix"] == 100).all()
    assert oracle["SI-SDRi"].mean() > 5


def test_mask_objective_is_scored_for_the_method_and_the_oracle_mask(setup):
    explainer = setup["gradcam"]
    batch = _batch(setup["datasets"]["mixtures"])
    explanation = explainer.explain(
        batch.sig.data, batch.sig.lengths, target=batch.stem_labels.data[:, 0]
    )
    evaluator = Evaluator(setup["folder"], mask_objective=lambda e, kept, removed: e.mask.mean())
    values, oracle = evaluator.ground_truth(explainer, explanation, batch)
    stft = explainer.front_end.stft
    ideal = explainer.front_end.ratio_mask(
        stft(batch.sig.data).abs(), stft(batch.stem1_sig.data).abs()
    )
    torch.testing.assert_close(values["loss-in-mix"], explanation.mask.mean().expand(len(ideal)))
    torch.testing.assert_close(oracle["loss-in-mix"], ideal.mean().expand(len(ideal)))
    assert (
        "loss-in-mix"
        not in Evaluator(setup["folder"]).ground_truth(explainer, explanation, batch)[0]
    )


def test_ground_truth_leaves_out_decisions_outside_the_mixture(setup):
    explainer = setup["gradcam"]
    batch = _batch(setup["datasets"]["mixtures"])
    present = batch.stem_labels.data
    absent = torch.tensor(
        [next(c for c in range(len(CLASSES)) if c not in row.tolist()) for row in present]
    )
    explanation = explainer.explain(batch.sig.data, batch.sig.lengths, target=absent)
    values, oracle = Evaluator(setup["folder"]).ground_truth(explainer, explanation, batch)
    assert torch.isnan(values["SI-SDRi"]).all() and torch.isnan(oracle["SI-SDRi"]).all()
    assert (values["in-mix"] == 0).all()


def test_trivial_explainers(setup):
    from interpreters.evaluation.evaluator import faithfulness_scores
    from interpreters.explainers.base import classify_halves
    from interpreters.explainers.trivial import InputEnergy, KeepAll, RandomMask

    classifier, front_end = setup["lmac"].classifier, setup["lmac"].front_end
    wavs, lens = _batch(setup["datasets"]["test"]).sig
    keep_all = KeepAll(classifier, front_end).explain(wavs, lens)
    torch.testing.assert_close(keep_all.interpretation, wavs, atol=1e-5, rtol=0)
    assert keep_all.residual.abs().max() < 1e-6
    # Round-off of the resynthesis must not count as an increase of the decision's probability.
    scores = faithfulness_scores(keep_all, *classify_halves(classifier, keep_all))
    assert scores["AI"].sum() == 0 and scores["AG"].sum() == 0 and scores["AD"].max() < 1e-2
    energy = InputEnergy(classifier, front_end).explain(wavs, lens).mask
    assert torch.allclose(energy.flatten(1).amax(1), torch.ones(len(wavs)))
    for mean in (0.1, 0.8):
        random = RandomMask(classifier, front_end, mean=mean, seed=3).explain(wavs, lens).mask
        assert 0 <= random.min() and random.max() <= 1
        assert abs(float(random.mean()) - mean) < 0.01
        again = RandomMask(classifier, front_end, mean=mean, seed=3).explain(wavs, lens).mask
        assert torch.equal(random, again)
