"""InterpreterBrain in-process: the explain() contract, targets, and ground-truth stem choice."""

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from interpreters.audio import FrontEnd
from interpreters.brain import Explanation
from interpreters.classifiers.spectrogram_cnn import SpectrogramCNN
from interpreters.data.dataio import build_datasets
from interpreters.data.synth import CLASSES, prepare_synth
from interpreters.errors import InterpreterError
from interpreters.methods.lmac import LMAC, MaskDecoder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    manifests = prepare_synth(str(folder), 1, 1, 1, 4, duration=0.5)
    labels = list(CLASSES)
    datasets = build_datasets(manifests, str(folder), labels, 16000)
    torch.manual_seed(0)
    classifier = SpectrogramCNN(labels, n_fft=256, hop_length=128, channels=[4, 8]).eval()
    classifier.requires_grad_(False)
    front_end = FrontEnd(16000, n_fft=256, hop_length=128)
    decoder = MaskDecoder(classifier.hidden_channels, layers=[0, 1], channels=4)
    hparams = {
        "classifier": classifier,
        "front_end": front_end,
        "output_folder": str(folder / "run"),
        "method_name": "L-MAC",
        "n_examples": 0,
        "lambda_in": 4.0,
        "lambda_out": 0.2,
        "lambda_reg": 0.4,
        "lambda_tv": 0.1,
    }
    brain = LMAC(modules={"decoder": decoder}, hparams=hparams, run_opts={"device": "cpu"})
    return brain, datasets


def _batch(dataset):
    return PaddedBatch([dataset[i] for i in range(len(dataset))])


def test_explain_contract(setup):
    brain, datasets = setup
    batch = _batch(datasets["test"])
    wavs, lens = batch.sig
    explanation = brain.explain(wavs, lens)
    assert isinstance(explanation, Explanation)
    frames, freqs = brain.front_end.n_frames(wavs.shape[1]), brain.front_end.n_freqs
    assert explanation.mask.shape == (len(wavs), frames, freqs)
    assert 0 <= explanation.mask.min() and explanation.mask.max() <= 1
    assert explanation.interpretation.shape == wavs.shape == explanation.residual.shape
    assert torch.equal(explanation.target, explanation.logits.argmax(-1))


def test_targets_by_name_index_and_unknown(setup):
    brain, datasets = setup
    wavs, lens = _batch(datasets["test"]).sig
    named = brain.explain(wavs, lens, target="tweet")
    assert named.target.tolist() == [CLASSES.index("tweet")] * len(wavs)
    assert brain.explain(wavs, lens, target=3).target.tolist() == [3] * len(wavs)
    with pytest.raises(InterpreterError, match="unknown class 'whistle'"):
        brain.explain(wavs, lens, target="whistle")
    with pytest.raises(InterpreterError, match="out of range"):
        brain.explain(wavs, lens, target=99)


def test_loss_is_finite_and_trains_the_decoder(setup):
    brain, datasets = setup
    batch = _batch(datasets["train"])
    explanation, in_logits, out_logits = brain.compute_forward(batch, stage=None)
    loss = brain.interpreter_loss(explanation, in_logits, out_logits)
    loss.backward()
    grads = [p.grad for p in brain.modules.decoder.parameters()]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    brain.modules.decoder.zero_grad()


@pytest.mark.parametrize("which", [0, 1])
def test_ground_truth_scores_the_stem_of_the_explained_class(setup, which):
    brain, datasets = setup
    batch = _batch(datasets["mixtures"])
    stems = [batch.stem1_sig.data, batch.stem2_sig.data]
    target = batch.stem_labels.data[:, which]
    explanation = brain.explain(batch.sig.data, batch.sig.lengths, target=target)
    # An interpretation equal to the explained class' stem is a perfect separation.
    explanation.interpretation = stems[which]
    brain.accumulators = {}
    values = brain.ground_truth(batch, explanation)
    assert (values["SI-SDR"] > 60).all()
    assert (values["SI-SDRi"] > 50).all()
    assert (values["in-mix"] == 100).all()
    oracle = brain.accumulators["oracle"].summary()
    assert oracle["SI-SDRi"] > 5


def test_ground_truth_leaves_out_decisions_outside_the_mixture(setup):
    brain, datasets = setup
    batch = _batch(datasets["mixtures"])
    present = batch.stem_labels.data
    absent = torch.tensor(
        [next(c for c in range(len(CLASSES)) if c not in row.tolist()) for row in present]
    )
    explanation = brain.explain(batch.sig.data, batch.sig.lengths, target=absent)
    brain.accumulators = {}
    values = brain.ground_truth(batch, explanation)
    assert torch.isnan(values["SI-SDRi"]).all()
    assert (values["in-mix"] == 0).all()
