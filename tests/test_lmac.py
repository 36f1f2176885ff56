"""The class-conditioned L-MAC: on-the-fly mixing, Grad-CAM conditioning at every level, the
decoder on 2D and 1D hidden maps, and the two-target training step."""

import pytest
import speechbrain as sb
import torch
import torch.nn.functional as F
from conftest import lmac_brain
from speechbrain.dataio.batch import PaddedBatch

from interpreters.audio import FrontEnd
from interpreters.errors import InterpreterError
from interpreters.explainers.base import resolve_target
from interpreters.explainers.conditioning import class_condition
from interpreters.explainers.lmac import LMAC, ConditionedMaskDecoder
from interpreters.models.spectrogram_cnn import SpectrogramCNN
from interpreters.models.waveform_cnn import WaveformCNN
from interpreters.training.lmac import energy_weights, guide_target
from interpreters.training.mixing import explained_mixtures, mix_parts

LABELS = [f"c{i}" for i in range(5)]
FRONT_END = FrontEnd(16000, n_fft=256, hop_length=128)


def classifier(kind: str):
    torch.manual_seed(0)
    if kind == "spec":
        model = SpectrogramCNN(LABELS, n_fft=256, hop_length=128, channels=[4, 8])
    else:
        model = WaveformCNN(LABELS, first_kernel=16, channels=[4, 4, 8], pool=2)
    return model.eval().requires_grad_(False)


def train_decoder(brain, decoder, batch, steps: int):
    """``steps`` Adam steps (lr 0.01) of ``decoder`` through ``brain``'s training step, on the
    same mixtures of ``batch`` every step; the last explanation and every step's loss."""
    optimiser = torch.optim.Adam(decoder.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        brain.mix_generator.manual_seed(0)
        explanation, heard = brain.compute_forward(batch, sb.Stage.TRAIN)
        loss = brain.loss(explanation, *heard)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    return explanation, losses


def condition_for(model, wavs, target=None):
    return class_condition(model, wavs, lambda logits: resolve_target(target, logits, LABELS))


def test_mix_parts_keeps_lengths_and_sums_the_partner_at_the_snr():
    generator = torch.Generator().manual_seed(0)
    wavs = torch.randn(4, 800)
    lens = torch.tensor([1.0, 0.5, 1.0, 0.75])
    mixture, _, new_lens, mixed = mix_parts(wavs, lens, (3.0, 3.0), generator)
    assert mixture.shape == wavs.shape and mixed.all()
    assert torch.equal(new_lens, torch.maximum(lens, lens.roll(-1)))
    # mixture = s · (x_i + g x_{i+1}), g setting the SNR to 3 dB, s restoring x_i's peak
    partner = wavs.roll(-1, dims=0)
    gain = (wavs.square().sum(1) / (partner.square().sum(1) * 10**0.3)).sqrt()
    unscaled = wavs + gain[:, None] * partner
    scale = mixture.abs().amax(1) / unscaled.abs().amax(1)
    torch.testing.assert_close(mixture, scale[:, None] * unscaled)
    torch.testing.assert_close(mixture.abs().amax(1), wavs.abs().amax(1))
    same, _, same_lens, none = mix_parts(wavs, lens, (-5.0, 5.0), torch.Generator(), prob=0.0)
    assert torch.equal(same, wavs) and torch.equal(same_lens, lens) and not none.any()


def test_a_silent_clip_is_left_unmixed_and_every_mixture_stays_finite():
    """A silent clip (a crop between notes) has no level for an SNR: on the old code its
    partner's gain overflowed and the mixture became NaN, ending LMAC-TD's training."""
    wavs = torch.randn(4, 800)
    wavs[2] = 0.0
    mixture, own, _, mixed = mix_parts(wavs, torch.ones(4), (-5.0, 5.0), torch.Generator())
    assert torch.isfinite(mixture).all() and torch.isfinite(own).all()
    assert mixed.tolist() == [True, False, False, True]  # 1 + silent 2, silent 2 + 3
    torch.testing.assert_close(mixture[1], wavs[1])
    assert float(mixture[2].abs().max()) == 0.0


def test_each_explained_row_carries_the_clip_it_explains_as_it_sounds_in_the_mixture():
    model = classifier("spec")
    wavs, lens = 0.1 * torch.randn(4, 4000), torch.ones(4)
    mixture, own, _, mixed = mix_parts(wavs, lens, (-5.0, 5.0), torch.Generator().manual_seed(3))
    assert mixed.all()
    partner = mixture - own
    ratio = own[0] / wavs[0]  # clip i at the mixture's peak scaling
    torch.testing.assert_close(ratio, ratio[0].expand_as(ratio))
    rows = explained_mixtures(
        model, wavs, lens, (-5.0, 5.0), torch.Generator().manual_seed(3), 1.0, True, True
    )
    # mixtures of clips 0+1 and 2+3, explained for clip 0, 2, then for clip 1, 3
    torch.testing.assert_close(rows.wavs, torch.cat([mixture[[0, 2]], mixture[[0, 2]]]))
    torch.testing.assert_close(rows.sources, torch.cat([own[[0, 2]], partner[[0, 2]]]))
    heard, clip = rows.sources[2], wavs[1]  # the partner: clip 1 at the mixture's gain
    gain = (heard @ clip) / (clip @ clip)
    assert gain > 0
    torch.testing.assert_close(heard, gain * clip, atol=1e-6, rtol=0)


def test_correct_pairs_only_keeps_the_mixtures_whose_two_clips_are_decided_as_labelled():
    model = classifier("spec")
    wavs, lens = 0.1 * torch.randn(6, 4000), torch.ones(6)
    decisions = model(wavs).argmax(-1)
    labels = decisions.clone()
    labels[3] = (decisions[3] + 1) % model.n_classes  # mixture of clips 2+3: partner wrong

    def mixtures(labels=None):
        generator = torch.Generator().manual_seed(3)
        return explained_mixtures(
            model, wavs, lens, (-5.0, 5.0), generator, 1.0, True, True, labels
        )

    every, kept = mixtures(), mixtures(labels)
    # mixtures 0+1, 2+3, 4+5 -> 0+1 and 4+5, each explained for its first clip, then its second
    torch.testing.assert_close(kept.wavs, every.wavs[[0, 2, 3, 5]])
    assert torch.equal(kept.target, decisions[[0, 4, 1, 5]])
    assert torch.equal(kept.sources, every.sources[[0, 2, 3, 5]])
    labels[1] = (decisions[1] + 1) % model.n_classes  # no mixture left right: all are kept
    labels[5] = (decisions[5] + 1) % model.n_classes
    torch.testing.assert_close(mixtures(labels).wavs, every.wavs)


def band_noise(bands: list[tuple[float, float]], length: int = 4000) -> torch.Tensor:
    """One clip of noise per (low, high) band in Hz, peak 0.3."""
    freqs = torch.fft.rfftfreq(length, 1 / 16000)
    clips = [
        torch.fft.irfft(
            torch.fft.rfft(torch.randn(length)) * ((freqs >= lo) & (freqs < hi)), length
        )
        for lo, hi in bands
    ]
    return torch.stack([0.3 * x / x.abs().max() for x in clips])


def low_high_classifier():
    """The tiny CNN trained to call noise below 1.5 kHz class 0 and noise in 3-4.5 kHz class 1,
    so the two clips of a mixture are decided apart."""
    model = classifier("spec").train().requires_grad_(True)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    labels = torch.tensor([0, 1] * 4)
    for _ in range(30):
        loss = F.cross_entropy(model(band_noise([(0, 1500), (3000, 4500)] * 4)), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize(
    "guide, weight", [("loud", "uniform"), ("dominant", "uniform"), ("dominant", "energy")]
)
def test_guided_fine_tuning_pulls_the_mask_to_the_guide(tmp_path, guide, weight):
    compressed = torch.tensor([[[0.0, 1.0], [0.3, 0.4]]])
    assert guide_target(compressed, 0.35).tolist() == [[[0.0, 1.0], [0.0, 1.0]]]
    torch.manual_seed(1)
    model = low_high_classifier()
    decoder = ConditionedMaskDecoder(model.hidden_channels, layers=[0, 1], channels=4)
    brain = lmac_brain(
        LMAC(model, FRONT_END, decoder),
        tmp_path,
        **dict(lambda_in=0.0, lambda_out=0.0, lambda_reg=0.0, lambda_excl=0.0),
        **dict(lambda_guide=1.0, guide=guide, guide_weight=weight),
    )
    # clips 2k: noise below 1.5 kHz, clips 2k + 1: noise in 3-4.5 kHz (the rest is quiet)
    clips = band_noise([(0, 1500), (3000, 4500)] * 2)
    assert model(clips).argmax(-1).tolist() == [0, 1, 0, 1]
    batch = PaddedBatch([{"sig": x} for x in clips])
    explanation, losses = train_decoder(brain, decoder, batch, 40)
    assert losses[-1] < 0.8 * losses[0]
    source = FRONT_END.analyse(explanation.extras["sources"]).compressed
    if guide == "loud":
        wanted = guide_target(source, 0.35) > 0
    else:
        wanted = source > FRONT_END.analyse(explanation.extras["others"]).compressed
    mask = explanation.mask.detach()
    weights = energy_weights(explanation) if weight == "energy" else torch.ones_like(mask)

    def mean(bins):  # the mask's mean over those bins, by the weights the guide gives them
        return (mask * weights)[bins].sum() / weights[bins].sum()

    assert mean(wanted) > mean(~wanted) + 0.2
    with pytest.raises(InterpreterError, match="yaml key guide is 'lowd'; use loud or dominant"):
        lmac_brain(LMAC(model, FRONT_END, decoder), tmp_path / "bad", guide="lowd")
    with pytest.raises(InterpreterError, match="guide_weight is 'loud'; use uniform or energy"):
        lmac_brain(LMAC(model, FRONT_END, decoder), tmp_path / "bad", guide_weight="loud")
    weights = energy_weights(explanation)
    compressed = explanation.spectrum.compressed
    torch.testing.assert_close(weights.mean(dim=(1, 2)), torch.ones(len(weights)))
    torch.testing.assert_close(weights * compressed.mean(dim=(1, 2), keepdim=True), compressed)


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
    for stride, use_input, unet in ((1, False, 0), (2, True, 0), (1, False, 2), (3, False, 3)):
        decoder = ConditionedMaskDecoder(
            model.hidden_channels,
            channels=4,
            decode_stride=stride,
            use_input=use_input,
            unet_levels=unet,
        )
        mask = decoder(hidden, compressed, condition)
        assert mask.shape == compressed.shape
        assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    with pytest.raises(InterpreterError, match="set input_layers: 0 and use_input: False"):
        ConditionedMaskDecoder(model.hidden_channels, input_layers=2, unet_levels=2)


def harmonic_clips(f0s: list[float], length: int = 4000) -> torch.Tensor:
    """Clips of 8 equal harmonics of each f0 (a comb over frequency finer than hidden maps)."""
    t = torch.arange(length) / 16000
    return torch.stack(
        [sum(torch.sin(2 * torch.pi * k * f0 * t) for k in range(1, 9)) / 8 for f0 in f0s]
    )


def test_unet_decoder_draws_a_mask_finer_than_the_classifier_maps():
    """Fitted to the harmonics' bins (a comb the classifier's pooled maps cannot resolve), the
    U-Net over the input gets far closer than the decoder of hidden maps alone."""
    model = classifier("spec")
    wavs = harmonic_clips([310.0, 440.0, 530.0, 670.0])
    compressed = FRONT_END.analyse(wavs).compressed
    wanted = (compressed > 0.3 * compressed.amax(dim=(1, 2), keepdim=True)).float()
    _, hidden, condition = condition_for(model, wavs)
    losses = {}
    for unet in (0, 2):
        torch.manual_seed(0)
        decoder = ConditionedMaskDecoder(model.hidden_channels, channels=4, unet_levels=unet)
        optimiser = torch.optim.Adam(decoder.parameters(), lr=0.01)
        for _ in range(150):
            loss = F.binary_cross_entropy(decoder(hidden, compressed, condition), wanted)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        losses[unet] = float(loss)
    assert losses[2] < 0.3 * losses[0], losses


def test_two_target_step_explains_both_clips_and_trains_the_decoder(tmp_path):
    model = classifier("spec")
    decoder = ConditionedMaskDecoder(model.hidden_channels, layers=[0, 1], channels=4)
    explainer = LMAC(model, FRONT_END, decoder)
    brain = lmac_brain(explainer, tmp_path, lambda_gain=0.1)
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


def test_keep_in_term_charges_only_a_loss_of_confidence_against_the_input(tmp_path):
    from interpreters.explainers.base import Explanation

    model = classifier("spec")
    decoder = ConditionedMaskDecoder(model.hidden_channels, layers=[0, 1], channels=4)
    keep = lmac_brain(LMAC(model, FRONT_END, decoder), tmp_path / "keep", in_term="keep")
    confidence = lmac_brain(LMAC(model, FRONT_END, decoder), tmp_path / "confidence")
    given = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # the classifier on the whole input
    kept = torch.tensor([[4.0, 0.0], [0.0, 0.0]], requires_grad=True)  # surer / less sure
    target = torch.tensor([0, 1])
    rows = Explanation(torch.ones(2, 3, 3), None, None, given, target, {}, None)
    loss_of_row_1 = F.cross_entropy(kept[1:], target[1:]) - F.cross_entropy(given[1:], target[1:])
    assert float(loss_of_row_1) > 0
    torch.testing.assert_close(keep.kept_term(rows, kept), loss_of_row_1 / 2)  # row 0: no reward
    torch.testing.assert_close(confidence.kept_term(rows, kept), F.cross_entropy(kept, target))
    keep.kept_term(rows, kept).backward()
    assert kept.grad[0].abs().sum() == 0 and kept.grad[1].abs().sum() > 0
    with pytest.raises(InterpreterError, match="in_term is 'kept'; use confidence or keep"):
        lmac_brain(LMAC(model, FRONT_END, decoder), tmp_path / "bad", in_term="kept")


def test_coverage_counts_the_energy_neither_mask_of_a_pair_keeps(tmp_path):
    from interpreters.training.mixing import pair_coverage

    # one mixture explained twice (rows a, b); bins of compressed magnitude 3 and 1
    compressed = torch.tensor([[[3.0, 1.0]]]).repeat(2, 1, 1)
    mask = torch.tensor([[[0.5, 0.0]], [[0.2, 1.0]]])
    # weights 1.5 and 0.5 (mean 1); uncovered 0.3 and 0
    coverage = pair_coverage(mask, compressed, torch.tensor([True]))
    torch.testing.assert_close(coverage, torch.tensor(0.225))
    # trained on the low/high mixtures, the term makes the pair cover more of the mixture
    torch.manual_seed(1)
    model = low_high_classifier()
    clips = band_noise([(0, 1500), (3000, 4500)] * 2)
    batch = PaddedBatch([{"sig": x} for x in clips])
    uncovered = {}
    for weight in (0.0, 4.0):
        torch.manual_seed(0)
        decoder = ConditionedMaskDecoder(model.hidden_channels, layers=[0, 1], channels=4)
        brain = lmac_brain(
            LMAC(model, FRONT_END, decoder), tmp_path / str(weight), lambda_cover=weight
        )
        explanation, _ = train_decoder(brain, decoder, batch, 30)
        pairs = explanation.extras["pairs"]
        assert bool(pairs.all())
        uncovered[weight] = float(
            pair_coverage(explanation.mask, explanation.spectrum.compressed, pairs)
        )
    assert uncovered[4.0] < 0.5 * uncovered[0.0], uncovered


def test_twin_rows_pair_each_clips_two_explanations_and_the_term_makes_them_agree(tmp_path):
    from interpreters.training.lmac import twin_inconsistency
    from interpreters.training.mixing import twin_rows

    # mixtures i = clip i + clip i+1 (4 clips); mixture 2 (clips 2+3) decided alike: not a pair
    twins = twin_rows(torch.tensor([True, True, False, True]))
    # row i: clip i's own row; row 4 + i: clip i+1 as partner in mixture i
    assert twins.tolist() == [7, 4, -1, -1, 1, -1, -1, 0]
    model = low_high_classifier()
    wavs = band_noise([(0, 1500), (3000, 4500)] * 3)
    rows = explained_mixtures(
        model, wavs, torch.ones(6), (-5.0, 5.0), torch.Generator().manual_seed(3), 1.0, True, False
    )
    assert bool((rows.twins >= 0).all())
    for row, twin in enumerate(rows.twins.tolist()):  # the same clip at two levels
        a, b = rows.sources[row], rows.sources[twin]
        torch.testing.assert_close(a * (b @ b) / (a @ b), b, atol=1e-5, rtol=0)
    with pytest.raises(InterpreterError, match="lambda_twin > 0 needs every clip in two mixtures"):
        decoder = ConditionedMaskDecoder(model.hidden_channels, layers=[0, 1], channels=4)
        lmac_brain(LMAC(model, FRONT_END, decoder), tmp_path / "bad", lambda_twin=1.0)
    batch = PaddedBatch([{"sig": x} for x in wavs])
    disagreement = {}
    for weight in (0.0, 20.0):
        torch.manual_seed(0)
        decoder = ConditionedMaskDecoder(model.hidden_channels, layers=[0, 1], channels=4)
        brain = lmac_brain(
            LMAC(model, FRONT_END, decoder),
            tmp_path / str(weight),
            lambda_twin=weight,
            disjoint_pairs=False,
        )
        explanation, _ = train_decoder(brain, decoder, batch, 40)
        twins = explanation.extras["twins"]
        disagreement[weight] = float(twin_inconsistency(explanation, twins, FRONT_END).detach())
    assert disagreement[20.0] < 0.2 * disagreement[0.0], disagreement


@pytest.mark.parametrize("unet", [0, 2])
def test_input_gradient_channel_is_the_class_evidence_on_the_bins(unet):
    import dataclasses

    model = classifier("spec")
    wavs = torch.randn(2, 4000) * 0.1
    compressed = FRONT_END.analyse(wavs).compressed
    _, hidden, condition = condition_for(model, wavs, 3)
    features = model.features(wavs).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.classify(features)[0][:, 3].sum(), features)
    expected = F.relu(grad * features.detach())
    expected = expected / expected.amax(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(condition.input_map, expected)
    decoder = ConditionedMaskDecoder(
        model.hidden_channels, channels=4, unet_levels=unet, use_input_gradient=True
    )
    mask = decoder(hidden, compressed, condition)
    blank = dataclasses.replace(condition, input_map=torch.zeros_like(condition.input_map))
    assert mask.shape == compressed.shape
    assert not torch.allclose(mask, decoder(hidden, compressed, blank))
    wave = classifier("wave")  # reads the waveform: no map on the bins
    _, hidden, condition = condition_for(wave, wavs)
    assert condition.input_map is None
    decoder = ConditionedMaskDecoder(wave.hidden_channels, channels=4, use_input_gradient=True)
    with pytest.raises(InterpreterError, match="use_input_gradient needs a classifier that reads"):
        decoder(hidden, compressed, condition)


def test_frequency_mixing_links_distant_bins_and_starts_as_the_plain_decoder(tmp_path):
    """The mixer starts at zero (the plain decoder's mask), carries a bin's evidence to any
    other bin (an octave up here), learns in a training step, and refuses a wrong grid."""
    from interpreters.explainers.lmac import FrequencyMixer

    model = classifier("spec")
    wavs = torch.randn(2, 4000) * 0.1
    compressed = FRONT_END.analyse(wavs).compressed
    _, hidden, condition = condition_for(model, wavs)
    masks = []
    for mixing in (False, True):
        torch.manual_seed(0)
        decoder = ConditionedMaskDecoder(
            model.hidden_channels, channels=4, frequency_mixing=mixing, n_freqs=FRONT_END.n_freqs
        )
        masks.append(decoder(hidden, compressed, condition))
    torch.testing.assert_close(masks[0], masks[1])
    mixer = FrequencyMixer(16)
    with torch.no_grad():
        mixer.weight[5, 10] = 1.0
    x = torch.zeros(1, 1, 1, 16)
    x[..., 5] = 2.0
    assert mixer(x)[0, 0, 0].nonzero().flatten().tolist() == [5, 10]
    assert float(mixer(x)[0, 0, 0, 10]) == 2.0
    brain = lmac_brain(LMAC(model, FRONT_END, decoder), tmp_path)
    batch = PaddedBatch([{"sig": 0.1 * torch.randn(4000)} for _ in range(4)])
    train_decoder(brain, decoder, batch, steps=2)
    assert float(decoder.mixer.weight.abs().sum()) > 0
    with pytest.raises(InterpreterError, match="frequency_mixing needs n_freqs"):
        ConditionedMaskDecoder(model.hidden_channels, frequency_mixing=True)
    coarse = ConditionedMaskDecoder(
        model.hidden_channels, channels=4, decode_stride=2, frequency_mixing=True, n_freqs=129
    )
    assert coarse(hidden, compressed, condition).shape == compressed.shape
    mismatched = ConditionedMaskDecoder(
        model.hidden_channels, channels=4, frequency_mixing=True, n_freqs=FRONT_END.n_freqs + 3
    )
    with pytest.raises(InterpreterError, match="built for 132 frequency bins but the decoder's"):
        mismatched(hidden, compressed, condition)
