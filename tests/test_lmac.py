"""The class-conditioned L-MAC: on-the-fly mixing, Grad-CAM conditioning at every level, the
decoder on 2D and 1D hidden maps, and the two-target training step."""

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from interpreters.audio import FrontEnd
from interpreters.explainers.base import resolve_target
from interpreters.explainers.conditioning import class_condition
from interpreters.explainers.lmac import LMAC, ConditionedMaskDecoder
from interpreters.models.spectrogram_cnn import SpectrogramCNN
from interpreters.models.waveform_cnn import WaveformCNN
from interpreters.training.lmac import LMACBrain
from interpreters.training.mixing import mix_batch

LABELS = [f"c{i}" for i in range(5)]
FRONT_END = FrontEnd(16000, n_fft=256, hop_length=128)


def classifier(kind: str):
    torch.manual_seed(0)
    if kind == "spec":
        model = SpectrogramCNN(LABELS, n_fft=256, hop_length=128, channels=[4, 8])
    else:
        model = WaveformCNN(LABELS, first_kernel=16, channels=[4, 4, 8], pool=2)
    return model.eval().requires_grad_(False)


def condition_for(model, wavs, target=None):
    return class_condition(model, wavs, lambda logits: resolve_target(target, logits, LABELS))


def test_mix_batch_keeps_lengths_and_sums_the_partner_at_the_snr():
    generator = torch.Generator().manual_seed(0)
    wavs = torch.randn(4, 800)
    lens = torch.tensor([1.0, 0.5, 1.0, 0.75])
    mixture, new_lens, mixed = mix_batch(wavs, lens, (3.0, 3.0), generator)
    assert mixture.shape == wavs.shape and mixed.all()
    assert torch.equal(new_lens, torch.maximum(lens, lens.roll(-1)))
    # mixture = s · (x_i + g x_{i+1}), g setting the SNR to 3 dB, s restoring x_i's peak
    partner = wavs.roll(-1, dims=0)
    gain = (wavs.square().sum(1) / (partner.square().sum(1) * 10**0.3)).sqrt()
    unscaled = wavs + gain[:, None] * partner
    scale = mixture.abs().amax(1) / unscaled.abs().amax(1)
    torch.testing.assert_close(mixture, scale[:, None] * unscaled)
    torch.testing.assert_close(mixture.abs().amax(1), wavs.abs().amax(1))
    same, same_lens, none = mix_batch(wavs, lens, (-5.0, 5.0), torch.Generator(), prob=0.0)
    assert torch.equal(same, wavs) and torch.equal(same_lens, lens) and not none.any()


@pytest.mark.parametrize("kind", ["spec", "wave"])
def test_condition_follows_the_target_and_changes_the_mask(kind):
    model = classifier(kind)
    wavs = torch.randn(2, 4000) * 0.1
    compressed = FRONT_END.analyse(wavs).compressed
    decoder = ConditionedMaskDecoder(model.hidden_channels, layers=[0, 1], channels=4)
    masks = []
    for target in (0, 3):
        logits, hidden, condition = condition_for(model, wavs, target)
        assert condition.target.tolist() == [target, target]
        assert all(0 <= float(m.min()) and float(m.max()) <= 1 for m in condition.maps)
        assert [w.shape[1] for w in condition.weights] == model.hidden_channels
        masks.append(decoder(hidden, compressed, condition))
    assert not torch.allclose(masks[0], masks[1])
    logits, _, condition = condition_for(model, wavs)
    assert torch.equal(condition.target, logits.argmax(-1))


@pytest.mark.parametrize("kind", ["spec", "wave"])
def test_decoder_shape_and_range_for_2d_and_1d_hidden_maps(kind):
    model = classifier(kind)
    wavs = torch.randn(2, 4000) * 0.1
    compressed = FRONT_END.analyse(wavs).compressed
    _, hidden, condition = condition_for(model, wavs)
    for stride, use_input in ((1, False), (2, True)):
        decoder = ConditionedMaskDecoder(
            model.hidden_channels, channels=4, decode_stride=stride, use_input=use_input
        )
        mask = decoder(hidden, compressed, condition)
        assert mask.shape == compressed.shape
        assert float(mask.min()) >= 0 and float(mask.max()) <= 1


def test_two_target_step_explains_both_clips_and_trains_the_decoder(tmp_path):
    model = classifier("spec")
    decoder = ConditionedMaskDecoder(model.hidden_channels, layers=[0, 1], channels=4)
    explainer = LMAC(model, FRONT_END, decoder)
    hparams = {
        "explainer": explainer,
        "output_folder": str(tmp_path),
        "n_examples": 0,
        "eval_sets": [],
        **dict(lambda_in=4.0, lambda_out=0.2, lambda_reg=0.4, lambda_tv=0.0, lambda_gain=0.1),
        **dict(lambda_excl=1.0, mix_prob=1.0, snr_range=[-5.0, 5.0], seed=0),
        **dict(two_targets=True, disjoint_pairs=True, mix_valid=False),
    }
    brain = LMACBrain(modules={"decoder": decoder}, hparams=hparams, run_opts={"device": "cpu"})
    torch.manual_seed(1)
    batch = PaddedBatch([{"sig": 0.1 * torch.randn(4000)} for _ in range(4)])
    import speechbrain as sb

    explanation, heard = brain.compute_forward(batch, sb.Stage.TRAIN)
    # 2 mixtures (clips 0+1, 2+3), each explained for both clips' own decisions
    decisions = model(batch.sig.data).argmax(-1)
    assert explanation.target.tolist() == [*decisions[[0, 2]].tolist(), *decisions[[1, 3]].tolist()]
    loss = brain.loss(explanation, *heard)
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad.abs().sum() > 0 for p in decoder.parameters())
