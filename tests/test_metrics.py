"""Hand-computed checks of interpreters.metrics on tiny tensors."""

import math

import pytest
import torch

from interpreters.evaluation import metrics

# Three examples, three classes; the explained classes are c = [0, 0, 2].
P = torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
Q = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.5, 0.2], [0.1, 0.3, 0.6]])
R = torch.tensor([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.5, 0.3, 0.2]])
C = torch.tensor([0, 0, 2])


def close(actual: torch.Tensor, expected: list[float], **kwargs) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), **kwargs)


# ------------------------------------------------------------------------------- faithfulness


def test_average_increase():
    # ex0: q_c 0.7 > p_c 0.5 -> 100; ex1: 0.3 < 0.6 -> 0; ex2: 0.6 = 0.6 (not strictly) -> 0
    close(metrics.average_increase(P, Q, C), [100.0, 0.0, 0.0])


def test_increase_tolerance():
    # q_c − p_c: 0.2, −0.3, 0 → with a tolerance of 0.25 no example counts as an increase
    close(metrics.average_increase(P, Q, C, tolerance=0.25), [0.0, 0.0, 0.0])
    close(metrics.average_increase(P, Q, C, tolerance=0.1), [100.0, 0.0, 0.0])
    close(metrics.average_gain(P, Q, C, tolerance=0.25), [0.0, 0.0, 0.0])
    close(metrics.average_gain(P, Q, C, tolerance=0.1), [40.0, 0.0, 0.0])
    tiny = P.clone()
    tiny[0] = torch.tensor([0.5 - 1e-7, 0.3, 0.2 + 1e-7])  # a round-off "increase" of 1e-7
    assert metrics.average_increase(tiny, P, C)[0] == 100.0
    assert metrics.average_increase(tiny, P, C, tolerance=1e-3)[0] == 0.0


def test_stem_overlap():
    # bin 0: stems 1 and 1 (0 dB apart, shared), bin 1: 10 and 0.1 (40 dB apart); mixture energy
    # 4 and 102.01 → shared share 4 / 106.01; both stems sound in frame 0 only
    a = torch.tensor([[[1.0, 10.0], [0.0, 0.0]]])
    b = torch.tensor([[[1.0, 0.1], [0.0, 0.0]]])
    mix = a + b
    values = metrics.stem_overlap(a, b, mix)
    close(values["TF-overlap"], [100 * 4 / 106.01])
    close(values["time-overlap"], [100.0])
    apart = metrics.stem_overlap(
        torch.tensor([[[1.0], [0.0]]]), torch.tensor([[[0.0], [1.0]]]), mix[..., :1]
    )
    close(apart["time-overlap"], [0.0])


def test_average_drop():
    # ex0: max(0, 0.5 - 0.7) = 0 -> 0; ex1: 100 * (0.6 - 0.3) / 0.6 = 50; ex2: 0 / 0.6 = 0
    close(metrics.average_drop(P, Q, C), [0.0, 50.0, 0.0])


def test_average_gain():
    # ex0: 100 * (0.7 - 0.5) / (1 - 0.5) = 40; ex1: max(0, 0.3 - 0.6) = 0; ex2: 0
    close(metrics.average_gain(P, Q, C), [40.0, 0.0, 0.0])


def test_faithfulness_on_spectra():
    # p_c - r_c: 0.5 - 0.2 = 0.3; 0.6 - 0.4 = 0.2; 0.6 - 0.2 = 0.4
    close(metrics.faithfulness_on_spectra(P, R, C), [0.3, 0.2, 0.4])


def test_input_fidelity():
    # argmax q = [0, 1, 2] vs c = [0, 0, 2]: ex1 flips to class 1
    close(metrics.input_fidelity(Q, C), [1.0, 0.0, 1.0])


def test_faithfulness_dict():
    out = metrics.faithfulness(P, Q, R, C)
    assert list(out) == ["AI", "AD", "AG", "FF", "Fid-In"]
    close(out["AI"], [100.0, 0.0, 0.0])
    close(out["AD"], [0.0, 50.0, 0.0])
    close(out["AG"], [40.0, 0.0, 0.0])
    close(out["FF"], [0.3, 0.2, 0.4])
    close(out["Fid-In"], [1.0, 0.0, 1.0])
    assert all(v.shape == (3,) for v in out.values())


def test_degenerate_denominators():
    # ex0: p_c = 1, q_c = 0.5 -> AD = 100 * 0.5 / 1 = 50, AG numerator max(0, -0.5) = 0 -> 0
    # ex1: p_c = 0, q_c = 0.5 -> AD numerator max(0, -0.5) = 0 -> 0, AG = 100 * 0.5 / 1 = 50
    # ex2: p_c = 1 = q_c -> AD = 0, AG = 0 (no 0/0)
    p = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    q = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    c = torch.tensor([0, 0, 0])
    close(metrics.average_drop(p, q, c), [50.0, 0.0, 0.0])
    close(metrics.average_gain(p, q, c), [0.0, 50.0, 0.0])
    assert torch.isfinite(metrics.faithfulness(p, q, q, c)["AG"]).all()


@pytest.mark.parametrize("which", ["p", "q", "r"])
@pytest.mark.parametrize(
    "bad",
    [
        [[2.0, -1.0, 0.5], [0.1, 0.3, 3.0], [0.0, 0.0, 1.0]],  # logits
        [[0.5, 0.3, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]],  # row 0 sums to 0.9
        [[float("nan"), 0.5, 0.5], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]],
    ],
)
def test_rejects_non_probabilities(which, bad):
    args = {"p": P, "q": Q, "r": R, "target": C}
    args[which] = torch.tensor(bad)
    with pytest.raises(ValueError, match=r"probabilities expected \(softmax outputs\)"):
        metrics.faithfulness(**args)


def test_rejects_bad_target():
    with pytest.raises(ValueError):
        metrics.average_drop(P, Q, torch.tensor([0, 3, 1]))  # class 3 of 3
    with pytest.raises(ValueError):
        metrics.average_drop(P, Q, torch.tensor([0.0, 1.0, 1.0]))  # floats


# ------------------------------------------------------------------------------ mask statistics


def test_sparseness_gini():
    # Sorted a, n = 4, weights 2i - n - 1 = [-3, -1, 1, 3]; G = sum(w a) / (n sum a)
    # one-hot [0,0,0,1]: 3 * 1 / (4 * 1) = 0.75 = (n - 1) / n
    # constant [2,2,2,2]: (-3 - 1 + 1 + 3) * 2 / (4 * 8) = 0
    # [3,1,4,2] sorts to [1,2,3,4]: (-3 - 2 + 3 + 12) / (4 * 10) = 10 / 40 = 0.25
    # all-zero -> 0 by convention
    mask = torch.tensor(
        [[0.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0], [3.0, 1.0, 4.0, 2.0], [0.0, 0.0, 0.0, 0.0]]
    )
    close(metrics.sparseness(mask), [0.75, 0.0, 0.25, 0.0])
    # trailing shape does not matter: a [B, 2, 2] mask is flattened per example
    close(metrics.sparseness(mask.reshape(4, 2, 2)), [0.75, 0.0, 0.25, 0.0])


def test_complexity_entropy():
    # uniform over 4 -> log 4; one-hot -> 0; [1,1,2] / 4 -> -(2 * .25 log .25 + .5 log .5)
    # = 0.5 log 4 + 0.5 log 2 = 1.5 log 2; all-zero -> 0
    mask = torch.tensor(
        [[0.3, 0.3, 0.3, 0.3], [0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    )
    close(metrics.complexity(mask), [math.log(4), 0.0, 1.5 * math.log(2), 0.0])


def test_mask_mean_and_statistics():
    # means: (0 + 0 + 0 + 1) / 4 = 0.25; (0.5 * 4) / 4 = 0.5
    mask = torch.tensor([[[0.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    close(metrics.mask_mean(mask), [0.25, 0.5])
    stats = metrics.mask_statistics(mask)
    assert list(stats) == ["SPS", "COMP", "MM"]
    close(stats["SPS"], [0.75, 0.0])
    close(stats["COMP"], [0.0, math.log(4)])
    close(stats["MM"], [0.25, 0.5])


# ------------------------------------------------------------------------------- ground truth

S = torch.tensor([1.0, -1.0, 1.0, -1.0])  # zero mean, |s|^2 = 4
N = torch.tensor([1.0, 1.0, -1.0, -1.0])  # zero mean, <s, n> = 1 - 1 - 1 + 1 = 0, |n|^2 = 4


def test_si_sdr_orthogonal_noise():
    # est = s + 0.5 n: alpha = <est, s> / |s|^2 = 4 / 4 = 1, |alpha s|^2 = 4,
    #   |alpha s - est|^2 = |0.5 n|^2 = 1 -> 10 log10(4 / 1) = 6.0206 dB
    # est = 3 s + 0.5 n + 5 (DC removed first): alpha = 3, |3 s|^2 = 36, noise 1 -> 10 log10(36)
    # est = s + n: |s|^2 = 4, |n|^2 = 4 -> 0 dB
    est = torch.stack([S + 0.5 * N, 3 * S + 0.5 * N + 5, S + N])
    ref = S.expand(3, 4)
    close(metrics.si_sdr(est, ref), [10 * math.log10(4), 10 * math.log10(36), 0.0])


def test_si_sdr_scaled_copy_is_very_high():
    ref = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    assert (metrics.si_sdr(0.5 * ref, ref) > 100).all()
    assert (metrics.si_sdr(3.0 * ref + 1.0, ref) > 100).all()


def test_si_sdr_lens_ignores_tail():
    # First 4 samples as in the orthogonal example (6.0206 dB), then a padded tail: zeros in the
    # reference, garbage in the estimate.
    garbage = torch.tensor([100.0, -50.0, 30.0, 7.0])
    est = torch.cat([S + 0.5 * N, garbage]).unsqueeze(0)
    ref = torch.cat([S, torch.zeros(4)]).unsqueeze(0)
    # lens 0.5 keeps round(0.5 * 8) = 4 samples -> the garbage is ignored
    close(metrics.si_sdr(est, ref, lens=torch.tensor([0.5])), [10 * math.log10(4)])
    # without lens the garbage counts as noise (energy > 10^4 vs target energy ~ 4): < -30 dB
    assert metrics.si_sdr(est, ref).item() < -30


def test_si_sdr_lens_batched_equals_truncated():
    gen = torch.Generator().manual_seed(1)
    ref = torch.randn(3, 10, generator=gen)
    est = ref + 0.3 * torch.randn(3, 10, generator=gen)
    lens = torch.tensor([1.0, 0.7, 0.4])  # keep 10, 7, 4 samples
    batched = metrics.si_sdr(est, ref, lens)
    for b, keep in enumerate([10, 7, 4]):
        single = metrics.si_sdr(est[b : b + 1, :keep], ref[b : b + 1, :keep])
        torch.testing.assert_close(batched[b : b + 1], single)


def test_si_sdr_improvement_and_ground_truth():
    # mixture s + n has 0 dB (see above), interpretation s + 0.5 n has 6.0206 dB -> SI-SDRi 6.0206
    interp, mixture, ref = (S + 0.5 * N).unsqueeze(0), (S + N).unsqueeze(0), S.unsqueeze(0)
    gain = 10 * math.log10(4)
    close(metrics.si_sdr_improvement(interp, mixture, ref), [gain])
    out = metrics.ground_truth(interp, mixture, ref)
    assert list(out) == ["SI-SDR", "SI-SDRi"]
    close(out["SI-SDR"], [gain])
    close(out["SI-SDRi"], [gain])


def test_mask_energy_precision_recall():
    # ex0: E = mix^2 = [[1, 4], [9, 1]]; D = target > other = [[1, 0], [1, 0]]
    #   M = [[1, .5], [0, 1]]: sum M E = 1 + 2 + 0 + 1 = 4; sum M D E = 1; sum D E = 1 + 9 = 10
    #   precision = 1 / 4 = 0.25, recall = 1 / 10 = 0.1
    # ex1: zero mask -> precision 0 (empty denominator), recall 0 / 10 = 0
    # ex2: target never dominates (D = 0), full mask -> precision 0 / 15 = 0, recall 0 (empty)
    mix = torch.tensor([[1.0, 2.0], [3.0, 1.0]]).expand(3, 2, 2)
    target = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]] * 2 + [[[0.0, 0.0], [0.0, 0.0]]])
    other = torch.tensor([[0.0, 1.0], [1.0, 1.0]]).expand(3, 2, 2)
    mask = torch.stack(
        [torch.tensor([[1.0, 0.5], [0.0, 1.0]]), torch.zeros(2, 2), torch.ones(2, 2)]
    )
    precision, recall = metrics.mask_energy_precision_recall(mask, mix, target, other)
    close(precision, [0.25, 0.0, 0.0])
    close(recall, [0.1, 0.0, 0.0])


# -------------------------------------------------------------------------------- consistency


def test_batched_equals_per_example():
    gen = torch.Generator().manual_seed(2)
    batch, classes = 5, 4
    p, q, r = (torch.randn(batch, classes, generator=gen).softmax(-1) for _ in range(3))
    target = p.argmax(-1)
    mask = torch.rand(batch, 3, 6, generator=gen)
    mask[1] = 0  # include a degenerate all-zero mask
    mix, tgt, oth = (torch.rand(batch, 3, 6, generator=gen) for _ in range(3))
    wav_ref, wav_mix = torch.randn(batch, 32, generator=gen), torch.randn(batch, 32, generator=gen)
    wav_est = wav_ref + 0.5 * torch.randn(batch, 32, generator=gen)
    lens = torch.tensor([1.0, 0.5, 0.75, 0.25, 0.9])

    def run(i):  # every metric on rows i (a slice keeps the batch dimension)
        out = dict(metrics.faithfulness(p[i], q[i], r[i], target[i]))
        out.update(metrics.mask_statistics(mask[i]))
        out.update(metrics.ground_truth(wav_est[i], wav_mix[i], wav_ref[i], lens[i]))
        out["P"], out["R"] = metrics.mask_energy_precision_recall(mask[i], mix[i], tgt[i], oth[i])
        return out

    batched = run(slice(None))
    assert len(batched) == 12
    for key, value in batched.items():
        assert value.shape == (batch,), key
        per_example = torch.cat([run(slice(b, b + 1))[key] for b in range(batch)])
        torch.testing.assert_close(value, per_example, msg=key)


# -------------------------------------------------------------------------------- aggregation


def test_metric_accumulator_means_over_examples():
    acc = metrics.MetricAccumulator()
    acc.update({"AI": torch.tensor([1.0, 2.0, 3.0]), "FF": torch.tensor([float("nan"), 2.0, 1.0])})
    acc.update({"AI": torch.tensor([10.0]), "FF": torch.tensor([3.0])})
    summary = acc.summary()
    # AI: (1 + 2 + 3 + 10) / 4 = 4, not the mean of batch means (2 + 10) / 2 = 6
    assert summary["AI"] == pytest.approx(4.0)
    # FF: NaN ignored -> (2 + 1 + 3) / 3 = 2, one NaN reported; AI has no NaN key
    assert summary["FF"] == pytest.approx(2.0)
    assert summary["FF_n_nan"] == 1
    assert "AI_n_nan" not in summary
    assert acc.count("AI") == 4 and acc.count("FF") == 4 and acc.count("missing") == 0


def test_metric_accumulator_detaches():
    acc = metrics.MetricAccumulator()
    value = torch.tensor([1.0, 3.0], requires_grad=True) * 2
    acc.update({"x": value})
    assert acc.summary() == {"x": 4.0}


def test_format_table():
    rows = {"L2I": {"AI": 12.346, "AD": 3.0}, "L-MAC": {"AI": 50.0}}
    expected = "| name | AI | AD |\n|---|---:|---:|\n| L2I | 12.35 | 3.00 |\n| L-MAC | 50.00 | – |"
    assert metrics.format_table(rows, ["AI", "AD"]) == expected
