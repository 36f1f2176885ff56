"""Transformers feature extractors recomputed in torch, so gradients reach the waveform.

Each front end splits the extractor in two: ``forward`` gives the features of the real input
only (their time axis spans the input, so attributions over features are placed right), and
``network_input`` adds the model's own padding to them. ``network_input(forward(wavs))`` equals
the extractor's output (tests/test_adapters.py measures it).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchaudio.compliance.kaldi import get_mel_banks

from interpreters.errors import InterpreterError


def zero_mean_unit_variance(wavs: torch.Tensor) -> torch.Tensor:
    """Per-clip normalisation of the transformers extractors (``do_normalize``)."""
    mean = wavs.mean(dim=-1, keepdim=True)
    variance = wavs.var(dim=-1, unbiased=False, keepdim=True)
    return (wavs - mean) / torch.sqrt(variance + 1e-7)


def check_length(length: int, least: int, most: int | None, what: str) -> None:
    """One line when a clip is too short for one frame or longer than the model's window."""
    if length < least:
        raise InterpreterError(f"{what} needs clips of at least {least} samples, got {length}")
    if most is not None and length > most:
        raise InterpreterError(
            f"{what} reads at most {most} samples (the model's window) but got {length}; "
            "crop the clips (e.g. the data's duration setting) to fit the window"
        )


class RawWaveform(nn.Module):
    """Wav2Vec2FeatureExtractor: the waveform, zero-mean unit-variance when ``do_normalize``."""

    def __init__(self, extractor) -> None:
        super().__init__()
        self.normalize = bool(extractor.do_normalize)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> [B, 1, N] (a one-channel signal, as the waveform CNN's)."""
        return (zero_mean_unit_variance(wavs) if self.normalize else wavs).unsqueeze(1)

    def network_input(self, features: torch.Tensor) -> torch.Tensor:
        """[B, 1, N] -> the model's ``input_values`` [B, N]."""
        return features[:, 0]


class KaldiFbank(nn.Module):
    """ASTFeatureExtractor: Kaldi fbank (torchaudio.compliance.kaldi.fbank with a Hann window,
    batched), then the extractor's (x - mean) / (2 std); ``network_input`` pads with zeros
    (before normalisation) or crops to ``max_length`` frames, as the extractor does."""

    def __init__(self, extractor) -> None:
        super().__init__()
        rate = extractor.sampling_rate
        self.window_size = int(rate * 0.025)
        self.window_shift = int(rate * 0.010)
        self.padded_size = 2 ** math.ceil(math.log2(self.window_size))
        self.max_length = int(extractor.max_length)
        self.normalize = bool(extractor.do_normalize)
        self.mean, self.std = float(extractor.mean), float(extractor.std)
        bank, _ = get_mel_banks(
            extractor.num_mel_bins, self.padded_size, float(rate), 20.0, 0.0, 100.0, -500.0, 1.0
        )
        self.register_buffer("mel_bank", F.pad(bank, (0, 1)).T.contiguous(), persistent=False)
        window = torch.hann_window(self.window_size, periodic=False)
        self.register_buffer("window", window, persistent=False)

    def scale(self, fbank: torch.Tensor) -> torch.Tensor:
        """The extractor's normalisation (identity when ``do_normalize`` is off)."""
        return (fbank - self.mean) / (2 * self.std) if self.normalize else fbank

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> normalised log-mel fbank [B, frames, mel] of the real input."""
        check_length(wavs.shape[-1], self.window_size, None, "ASTFeatureExtractor")
        frames = wavs.unfold(-1, self.window_size, self.window_shift)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - 0.97 * previous) * self.window
        spectrum = torch.fft.rfft(frames, n=self.padded_size)
        power = spectrum.real.square() + spectrum.imag.square()
        eps = torch.finfo(power.dtype).eps
        return self.scale((power @ self.mel_bank).clamp_min(eps).log())

    def network_input(self, features: torch.Tensor) -> torch.Tensor:
        """[B, frames, mel] -> the model's ``input_values`` [B, max_length, mel]."""
        missing = self.max_length - features.shape[1]
        if missing <= 0:
            return features[:, : self.max_length]
        padding = self.scale(features.new_zeros(()))
        return F.pad(features, (0, 0, 0, missing), value=float(padding))


class WhisperLogMel(nn.Module):
    """WhisperFeatureExtractor: zero-pad to ``n_samples``, Hann STFT power, Slaney mel bank,
    log10, clamp at (max - 8), (x + 4) / 4; ``forward`` keeps the frames that touch the input.

    The frames it drops hold only padding: their value is max(-1.5, max_kept - 2), which
    ``network_input`` writes back exactly.
    """

    def __init__(self, extractor) -> None:
        super().__init__()
        self.n_fft = int(extractor.n_fft)
        self.hop_length = int(extractor.hop_length)
        self.n_samples = int(extractor.n_samples)
        self.n_frames = int(extractor.nb_max_frames)
        self.normalize = bool(getattr(extractor, "do_normalize", False))
        bank = torch.tensor(extractor.mel_filters, dtype=torch.float32)
        self.register_buffer("mel_bank", bank, persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> Whisper log-mel [B, frames, mel] over the real input."""
        length = wavs.shape[-1]
        check_length(length, 1, self.n_samples, "WhisperFeatureExtractor")
        if self.normalize:
            wavs = zero_mean_unit_variance(wavs)
        padded = F.pad(wavs, (0, self.n_samples - length))
        spec = torch.stft(
            padded, self.n_fft, self.hop_length, window=self.window, return_complex=True
        )[..., : self.n_frames]
        power = spec.real.square() + spec.imag.square()
        log_mel = torch.einsum("bft,fm->btm", power, self.mel_bank).clamp_min(1e-10).log10()
        peak = log_mel.amax(dim=(1, 2), keepdim=True)
        kept = min(self.n_frames, math.ceil((length + self.n_fft // 2) / self.hop_length))
        return (torch.maximum(log_mel, peak - 8.0)[:, :kept] + 4.0) / 4.0

    def network_input(self, features: torch.Tensor) -> torch.Tensor:
        """[B, frames, mel] -> the model's ``input_features`` [B, mel, n_frames]."""
        missing = self.n_frames - features.shape[1]
        floor = (features.amax(dim=(1, 2), keepdim=True) - 2.0).clamp_min(-1.5)
        padding = floor.expand(-1, missing, features.shape[2])
        return torch.cat([features, padding], dim=1).transpose(1, 2)


FRONT_ENDS = {
    "ASTFeatureExtractor": KaldiFbank,
    "Wav2Vec2FeatureExtractor": RawWaveform,
    "WhisperFeatureExtractor": WhisperLogMel,
}


def front_end_for(extractor, source: str) -> nn.Module:
    """The torch front end reproducing ``extractor``; an unsupported one is a one-line error."""
    name = type(extractor).__name__
    if name not in FRONT_ENDS:
        raise InterpreterError(
            f"{source}: feature extractor {name} is not supported yet (supported: "
            f"{', '.join(FRONT_ENDS)}); use a model with one of these or wrap it as an "
            "AudioClassifier"
        )
    return FRONT_ENDS[name](extractor)
