"""LRP through zennit: conservation, band-limited classifiers, the FFT inspection layer, and the
import of zennit without a working torchvision."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import TINY_DATA, run_recipe

from interpreters.audio import FrontEnd
from interpreters.explainers.lrp import LRP, inspect_time_frequency, lrp_relevance, make_composite
from interpreters.models.base import AudioClassifier

RATE = 16000
ROOT = Path(__file__).resolve().parents[1]


class BiasFreeNet(nn.Module):
    """Conv-ReLU-pool-Conv-ReLU, mean over positions, linear head; no biases, no BatchNorm."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
        self.body = nn.Sequential(
            conv(1, 8, 3, padding=1, bias=False),
            nn.ReLU(),
            pool(2),
            conv(8, 6, 3, padding=1, bias=False),
            nn.ReLU(),
        )
        self.head = nn.Linear(6, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.body(x)
        return self.head(hidden.flatten(2).mean(dim=2))


@pytest.mark.parametrize("composite", ["epsilon_plus", "epsilon_alpha2_beta1"])
@pytest.mark.parametrize(
    "shape, first_layer",
    [((3, 1, 12, 10), "same"), ((3, 1, 64), "epsilon")],
    ids=["2d", "1d-signed-input"],
)
def test_relevance_is_conserved_on_a_bias_free_model(composite, shape, first_layer):
    # A signed waveform gets the epsilon rule in its first layer: z+ and alpha-beta conserve
    # only where a neuron has contributions of both signs, which a 3-tap filter often lacks.
    torch.manual_seed(0)
    model = BiasFreeNet(dims=len(shape) - 2).eval()
    inputs = torch.rand(shape) if len(shape) == 4 else torch.randn(shape)
    target = torch.tensor([0, 1, 2])
    logits = model(inputs).gather(1, target[:, None]).squeeze(1)
    assert (logits.abs() > 1e-3).all()
    relevance = lrp_relevance(model, model, inputs, target, make_composite(composite, first_layer))
    assert relevance.shape == inputs.shape
    torch.testing.assert_close(relevance.flatten(1).sum(1), logits.detach(), rtol=1e-3, atol=1e-5)
    # And it is not a plain gradient x input: the rules changed the propagation.
    inputs.requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(inputs).gather(1, target[:, None]).sum(), inputs)
    assert not torch.allclose(relevance, gradient * inputs, atol=1e-4)


def band_filter(low: float, high: float, taps: int = 255) -> torch.Tensor:
    """Hann-windowed sinc band-pass FIR between ``low`` and ``high`` Hz."""
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    pass_band = (2 * high / RATE) * torch.sinc(2 * high / RATE * n) - (2 * low / RATE) * torch.sinc(
        2 * low / RATE * n
    )
    return (pass_band * torch.hann_window(taps, periodic=False, dtype=torch.float64)).float()


class BandListener(AudioClassifier):
    """Class 0 = energy in [low, high] Hz, class 1 = its negative; nothing else is heard.

    On the spectrogram: a (1 x F) convolution with weight 1 inside the band, 0 outside. On the
    waveform: a band-pass FIR, rectified. Both then average over time.
    """

    def __init__(self, waveform: bool, low: float, high: float) -> None:
        super().__init__()
        self.labels, self.sample_rate, self.hidden_channels = ["band", "not"], RATE, [1]
        self.front_end = FrontEnd(RATE, n_fft=256, hop_length=128)
        if waveform:
            self.detector = nn.Conv1d(1, 1, 255, padding=127, bias=False)
            self.detector.weight.data[:] = band_filter(low, high)
        else:
            freqs = torch.linspace(0, RATE / 2, self.front_end.n_freqs)
            self.detector = nn.Conv2d(1, 1, (1, self.front_end.n_freqs), bias=False)
            self.detector.weight.data[:] = ((freqs >= low) & (freqs <= high)).float()
        self.rectify = nn.ReLU()
        self.head = nn.Linear(1, 2, bias=False)
        self.head.weight.data[:] = torch.tensor([[1.0], [-1.0]])
        self.waveform = waveform

    def features(self, wavs):
        if self.waveform:
            return wavs.unsqueeze(1)
        return self.front_end.analyse(wavs).compressed.unsqueeze(1)

    def classify(self, features):
        hidden = self.rectify(self.detector(features))
        logits = self.head(hidden.flatten(2).mean(dim=2, keepdim=False))
        return logits, [hidden.unsqueeze(-1) if self.waveform else hidden]


@pytest.mark.parametrize("waveform", [False, True], ids=["spectrogram", "waveform"])
def test_relevance_of_a_band_listener_lies_in_its_band(waveform):
    low, high = 2000.0, 3000.0
    classifier = BandListener(waveform, low, high).eval()
    front_end = FrontEnd(RATE, n_fft=256, hop_length=128)
    explainer = LRP(classifier, front_end, make_composite("epsilon_plus", "epsilon"))
    torch.manual_seed(0)
    wavs = 0.1 * torch.randn(2, RATE // 2)  # white noise: every band has energy
    explanation = explainer.explain(wavs, target="band")
    relevance = explanation.extras["relevance"].abs()
    freqs = torch.linspace(0, RATE / 2, front_end.n_freqs)
    near_band = (freqs >= low - 250) & (freqs <= high + 250)
    share = relevance[..., near_band].sum(dim=(1, 2)) / relevance.sum(dim=(1, 2))
    assert (share > 0.9).all(), share
    mask = explanation.mask
    assert mask[..., near_band].mean() > 10 * mask[..., ~near_band].mean()


def dense_istft_relevance(wav, relevance, n_fft, hop):
    """Reference DFT-LRP: build the inverse STFT as a dense real matrix (numpy, no torch.istft)
    and apply LRP-0 through it, x = A_re·Re(Y) + A_im·Im(Y)."""
    n = len(wav)
    spec = FrontEnd(RATE, n_fft=n_fft, hop_length=hop).stft(torch.as_tensor(wav)[None])[0].numpy()
    frames, bins = spec.shape
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as torch.hann_window
    pad = n_fft // 2
    envelope = np.zeros(n + 2 * pad + n_fft)
    for t in range(frames):
        envelope[t * hop : t * hop + n_fft] += window**2
    m = np.arange(n_fft)
    per_unit = np.where(wav != 0, relevance / np.where(wav != 0, wav, 1), 0.0)
    out = np.zeros((frames, bins))
    for t in range(frames):
        for k in range(bins):
            weight = 1.0 if k in (0, n_fft // 2) else 2.0
            phase = 2 * np.pi * k * m / n_fft
            columns = [
                weight * window * np.cos(phase) / n_fft,
                -weight * window * np.sin(phase) / n_fft,
            ]
            for part, column in zip((spec[t, k].real, spec[t, k].imag), columns):
                full = np.zeros_like(envelope)
                full[t * hop : t * hop + n_fft] = column
                contribution = (full / np.where(envelope > 0, envelope, 1))[pad : pad + n]
                out[t, k] += part * (contribution * per_unit).sum()
    return out


def test_inspection_layer_matches_a_dense_dft_reference_and_conserves():
    rng = np.random.default_rng(0)
    wav = rng.standard_normal(64).astype(np.float32)
    sample_relevance = rng.standard_normal(64).astype(np.float32) * np.abs(wav)
    front_end = FrontEnd(RATE, n_fft=16, hop_length=4)
    fast = inspect_time_frequency(
        front_end, torch.from_numpy(wav)[None], torch.from_numpy(sample_relevance)[None]
    )[0]
    reference = dense_istft_relevance(wav, sample_relevance, n_fft=16, hop=4)
    assert fast.shape == reference.shape == (17, 9)
    np.testing.assert_allclose(fast.numpy(), reference, atol=1e-4 * np.abs(reference).max())
    assert (
        abs(float(fast.sum()) - float(sample_relevance.sum()))
        < 1e-3 * np.abs(sample_relevance).sum()
    )


def test_zennit_imports_when_torchvision_is_broken(tmp_path):
    broken = tmp_path / "torchvision"
    broken.mkdir()
    (broken / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n'
    )
    code = textwrap.dedent(
        """
        import interpreters, zennit
        from zennit.torchvision import ResNetCanonizer
        from zennit.composites import EpsilonPlus
        try:
            import torchvision
        except RuntimeError as err:
            print("real failure:", err)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "real failure: operator torchvision::nms does not exist" in result.stdout


def test_representation_comparison_recipe(trained_classifier, tmp_path):
    # The recipe's plumbing on tiny data; the tiny spectrogram CNN stands in for both models
    # (the waveform path of LRP is covered by the band-listener test above).
    out = tmp_path / "representations"
    pretrained = trained_classifier["pretrained"]
    result = run_recipe(
        "compare_representations.py",
        "hparams/compare.yaml",
        f"--output_folder={out}",
        f"--data_folder={trained_classifier['data']}",
        f"--spectrogram_source={pretrained}",
        f"--waveform_source={pretrained}",
        "--n_figures=1",
        "--n_audio=1",
        *TINY_DATA,
    )
    assert "relevance on target stem %" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["models"]
    assert set(rows) == {"spectrogram CNN", "waveform CNN"}
    bands = [key for key in rows["spectrogram CNN"] if key.endswith("Hz %")]
    assert abs(sum(rows["spectrogram CNN"][key] for key in bands) - 100) < 1e-3
    assert abs(summary["spearman between models"] - 1) < 1e-6  # same model twice
    assert list((out / "png").glob("*_relevance.png"))
    assert len(list((out / "wav").glob("*_lrp.wav"))) == 2
