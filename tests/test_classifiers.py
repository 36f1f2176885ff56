"""Classifiers: shapes and hidden maps, LRP-ready modules, export and reload through fetching."""

import time

import pytest
import torch
import torch.nn as nn

from interpreters.errors import InterpreterError
from interpreters.models.cnn14 import CNN14Classifier
from interpreters.models.loading import export_classifier, load_classifier
from interpreters.models.spectrogram_cnn import SpectrogramCNN
from interpreters.models.waveform_cnn import WaveformCNN

LABELS = ["a", "b", "c"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: SpectrogramCNN(LABELS, n_fft=256, hop_length=128, channels=[4, 8]),
        lambda: WaveformCNN(LABELS, channels=[4, 4, 8]),
    ],
)
def test_logits_and_hidden_maps(make):
    classifier = make().eval()
    logits, hidden = classifier.forward_with_hidden(torch.randn(2, 8000))
    assert logits.shape == (2, 3)
    assert [h.shape[1] for h in hidden] == classifier.hidden_channels
    assert torch.allclose(classifier(torch.randn(2, 8000) * 0), classifier(torch.zeros(2, 8000)))
    # LRP-ready: every activation and pooling is a module, never a functional call.
    kinds = {type(m) for m in classifier.modules()}
    assert nn.ReLU in kinds


def test_cnn14_wraps_speechbrain_blocks():
    classifier = CNN14Classifier(LABELS, n_fft=512, hop_length=256, n_mels=32, emb_dim=64).eval()
    logits, hidden = classifier.forward_with_hidden(torch.randn(1, 16000))
    assert logits.shape == (1, 3)
    assert [h.shape[1] for h in hidden] == classifier.hidden_channels


def test_export_then_load_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    classifier = SpectrogramCNN(LABELS, n_fft=256, hop_length=128, channels=[4, 8]).eval()
    export_classifier(classifier, tmp_path / "pretrained")
    assert (tmp_path / "pretrained" / "label_encoder.txt").read_text().startswith("'a' => 0")
    loaded = load_classifier(str(tmp_path / "pretrained"), tmp_path / "collected")
    assert loaded.labels == LABELS
    assert not any(p.requires_grad for p in loaded.parameters())
    wavs = torch.randn(2, 4000)
    assert torch.equal(loaded(wavs), classifier(wavs))


def test_source_errors_are_one_clear_line(tmp_path):
    with pytest.raises(InterpreterError, match="is not a folder"):
        load_classifier(str(tmp_path / "nothing_here"), tmp_path / "c")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "hyperparams.yaml").write_text("sample_rate: 16000\n")
    with pytest.raises(InterpreterError, match="no classifier we can load; accepted: interp"):
        load_classifier(str(tmp_path / "half"), tmp_path / "c")
    (tmp_path / "half" / "hyperparams.yaml").write_text("classifier: !new:torch.nn.Identity\n")
    with pytest.raises(InterpreterError, match="lacks classifier.ckpt"):
        load_classifier(str(tmp_path / "half"), tmp_path / "c")
    classifier = SpectrogramCNN(LABELS, n_fft=256, hop_length=128, channels=[4, 8])
    export_classifier(classifier, tmp_path / "corrupt")
    checkpoint = tmp_path / "corrupt" / "classifier.ckpt"
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InterpreterError, match=f"checkpoint {checkpoint} is corrupt or truncated"):
        load_classifier(str(tmp_path / "corrupt"), tmp_path / "c2")
    other = SpectrogramCNN(LABELS, n_fft=256, hop_length=128, channels=[4, 16])
    torch.save(other.state_dict(), checkpoint)
    with pytest.raises(InterpreterError, match="does not fit the model"):
        load_classifier(str(tmp_path / "corrupt"), tmp_path / "c3")


def test_hub_id_offline_fails_fast_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(InterpreterError, match="the hub cannot be reached .* no local folder"):
        load_classifier("nobody/no-such-classifier", tmp_path / "c")
    assert time.monotonic() - start < 10


def test_shared_targets_split_a_mixed_clip_between_both_labels():
    from interpreters.training.classifier import shared_targets

    labels = torch.tensor([0, 2, 2, 1])
    mixed = torch.tensor([True, False, True, True])
    targets = shared_targets(labels, mixed, 3)
    expected = torch.tensor(
        [[0.5, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 0.5, 0.5], [0.5, 0.5, 0.0]]
    )  # clip i mixed with clip i + 1; clips 1 and 2 share a class; the last wraps to clip 0
    assert torch.equal(targets, expected)
    assert torch.allclose(targets.sum(-1), torch.ones(4))


def test_mixed_training_batch_is_the_mixture_and_its_shared_labels():
    import speechbrain as sb
    from speechbrain.dataio.batch import PaddedBatch

    from interpreters.training.classifier import ClassifierBrain
    from interpreters.training.mixing import mix_parts

    torch.manual_seed(0)
    classifier = SpectrogramCNN(LABELS, sample_rate=8000, channels=[4, 8])
    wavs = torch.randn(4, 4000) * torch.tensor([1.0, 0.1, 0.5, 2.0])[:, None]
    items = [{"sig": w, "label_index": torch.tensor([i % 3])} for i, w in enumerate(wavs)]
    hparams = {"augment_gain_db": 0.0, "label_smoothing": 0.0, "mix_prob": 1.0}
    hparams |= {"snr_range": [-5.0, 5.0], "seed": 7}
    brain = ClassifierBrain(modules={"classifier": classifier}, hparams=hparams)
    mixtures, *_ = mix_parts(wavs, torch.ones(4), (-5.0, 5.0), torch.Generator().manual_seed(7))
    classifier.eval()  # dropout off for the comparison
    brain.mix_generator.manual_seed(7)
    logits, targets = brain.compute_forward(PaddedBatch(items), sb.Stage.TRAIN)
    assert torch.allclose(logits, classifier(mixtures), atol=1e-5)
    assert torch.equal(targets[0], torch.tensor([0.5, 0.5, 0.0]))
    loss = brain.compute_objectives((logits, targets), PaddedBatch(items), sb.Stage.TRAIN)
    assert torch.isclose(loss, -(targets * logits.log_softmax(-1)).sum(-1).mean())
    valid_logits, labels = brain.compute_forward(PaddedBatch(items), sb.Stage.VALID)
    assert torch.equal(labels, torch.tensor([0, 1, 2, 0]))  # validation stays on clean clips
    assert torch.allclose(valid_logits, classifier(wavs), atol=1e-5)
