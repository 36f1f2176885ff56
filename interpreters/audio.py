"""One front end (STFT, magnitude, compression) and the way back from a mask to a waveform.

Every method shares it, so what a listener hears is produced the same way for all of them:
the mask scales the compressed magnitude, which is expanded again and put back with the
input's phase before the inverse STFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn as nn

from interpreters.errors import InterpreterError

COMPRESSIONS = ("log1p", "none")


@dataclass
class Spectrum:
    """A batch of analysed waveforms: compressed magnitude [B, T, F], phase as a complex unit
    factor (spec / |spec|, 1 where |spec| = 0), original length."""

    compressed: torch.Tensor
    phase: torch.Tensor
    length: int


def unit_phase(spec: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """spec / |spec| (1 where |spec| = 0): applying the phase is then one multiplication, several
    times cheaper than angle() + polar() (the profile of an explanation showed them at 9 %)."""
    tiny = torch.finfo(magnitude.dtype).tiny
    parts = torch.view_as_real(spec) / magnitude.clamp_min(tiny).unsqueeze(-1)
    parts[..., 0].masked_fill_(magnitude == 0, 1.0)
    return torch.view_as_complex(parts)


class FrontEnd(nn.Module):
    """STFT analysis and masked resynthesis; settings come from yaml."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int | None = None,
        hop_length: int = 256,
        compression: str = "log1p",
    ) -> None:
        super().__init__()
        if compression not in COMPRESSIONS:
            raise InterpreterError(
                f"front end compression '{compression}' is unknown; use one of {COMPRESSIONS}"
            )
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length or n_fft
        self.hop_length = hop_length
        self.compression = compression
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    @property
    def n_freqs(self) -> int:
        """Number of frequency bins of the one-sided spectrum."""
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Number of STFT frames for a waveform of n_samples (centred frames over the waveform
        padded to a whole number of hops)."""
        return -(-n_samples // self.hop_length) + 1

    def stft(self, wavs: torch.Tensor) -> torch.Tensor:
        """Complex STFT of [B, N] waveforms, time first: [B, T, F].

        The waveform is zero-padded to a whole number of hops first: otherwise its last samples
        lie under the tail of one window only, where the inverse divides by a near-zero window
        sum and any change of the spectrum there comes back as a loud click.
        """
        return self.frames_stft(self.hop_padded(wavs), center=True)

    def hop_padded(self, wavs: torch.Tensor) -> torch.Tensor:
        """[B, N] zero-padded at the end to a whole number of hops."""
        return torch.nn.functional.pad(wavs, (0, (-wavs.shape[-1]) % self.hop_length))

    def frames_stft(self, wavs: torch.Tensor, center: bool) -> torch.Tensor:
        """torch.stft with this front end's settings, time first: [B, T, F]."""
        spec = torch.stft(
            wavs,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=center,
            return_complex=True,
        )
        return spec.transpose(1, 2)

    def compressed_magnitude(self, wavs: torch.Tensor, chunk_frames: int = 2048) -> torch.Tensor:
        """``compress(|stft(wavs)|)`` [B, T, F] computed a few thousand frames at a time: the
        same values, without a long file's whole complex spectrum in memory at once."""
        wavs = self.hop_padded(wavs)
        half = self.n_fft // 2
        padded = torch.nn.functional.pad(wavs[:, None], (half, half), mode="reflect")[:, 0]
        total = wavs.shape[-1] // self.hop_length + 1
        parts = []
        for start in range(0, total, chunk_frames):
            stop = min(start + chunk_frames, total)
            segment = padded[:, start * self.hop_length : (stop - 1) * self.hop_length + self.n_fft]
            parts.append(self.compress(self.frames_stft(segment, center=False).abs()))
        return torch.cat(parts, dim=1)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse of ``stft`` for a [B, T, F] complex spectrum, trimmed to ``length`` samples."""
        padded = (spec.shape[1] - 1) * self.hop_length
        return torch.istft(
            spec.transpose(1, 2),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            length=padded,
        )[..., :length]

    def compress(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Magnitude -> the domain masks live in (log1p upstream)."""
        return torch.log1p(magnitude) if self.compression == "log1p" else magnitude

    def expand(self, compressed: torch.Tensor) -> torch.Tensor:
        """Inverse of ``compress``."""
        return torch.expm1(compressed) if self.compression == "log1p" else compressed

    def analyse(self, wavs: torch.Tensor) -> Spectrum:
        """Waveforms [B, N] -> compressed magnitude and phase."""
        return self.spectrum(self.stft(wavs), wavs.shape[-1])

    def spectrum(self, spec: torch.Tensor, length: int) -> Spectrum:
        """Complex STFT [B, T, F] of ``length``-sample waveforms -> compressed magnitude, phase."""
        magnitude = spec.abs()
        return Spectrum(self.compress(magnitude), unit_phase(spec, magnitude), length)

    def synthesise(self, spectrum: Spectrum, mask: torch.Tensor) -> torch.Tensor:
        """Apply a [B, T, F] mask to the compressed magnitude; back to a waveform with the phase."""
        magnitude = self.expand(mask * spectrum.compressed)
        return self.istft(magnitude * spectrum.phase, spectrum.length)

    def listenable(
        self, spectrum: Spectrum, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Interpretation (mask kept) and residual (1 − mask kept) waveforms."""
        return self.synthesise(spectrum, mask), self.synthesise(spectrum, 1.0 - mask)

    def applied_gain(self, mask: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        """The linear gain a [B, T, F] mask applies to each bin of ``magnitude`` (|X|): on a
        log1p-compressed magnitude, expm1(M·log1p|X|)/|X|, not M (M = 0.5 on |X| = 100 is
        about −20 dB). 1 where |X| = 0 and M = 1, else 0 there."""
        kept = self.expand(mask * self.compress(magnitude))
        tiny = torch.finfo(magnitude.dtype).tiny
        silent = magnitude <= tiny
        gain = kept / magnitude.clamp_min(tiny)
        return torch.where(silent, (mask >= 1).to(gain.dtype), gain).clamp(0.0, 1.0)

    def ideal_mask(self, mixture: torch.Tensor, stem: torch.Tensor) -> torch.Tensor:
        """Oracle mask in this front end's domain: the one that best restores ``stem``'s magnitude.

        It is the ceiling any mask-based explanation can reach on a mixture with known sources.
        """
        return self.ratio_mask(self.stft(mixture).abs(), self.stft(stem).abs())

    def ratio_mask(self, mixture_magnitude: torch.Tensor, stem_magnitude: torch.Tensor):
        """``ideal_mask`` from magnitudes already computed: compressed stem over mixture."""
        return self.compressed_ratio(
            self.compress(mixture_magnitude), self.compress(stem_magnitude)
        )

    @staticmethod
    def compressed_ratio(mixture: torch.Tensor, stem: torch.Tensor) -> torch.Tensor:
        """The mask that turns the compressed ``mixture`` into the compressed ``stem``."""
        return (stem / mixture.clamp_min(1e-8)).clamp(0.0, 1.0)


MAX_PEAK = 1000.0  # 60 dB above full scale: beyond it a float file is broken, not loud


def load_audio(
    path: str | Path,
    sample_rate: int,
    *,
    resample: bool = False,
    downmix: bool = False,
    allow_silence: bool = True,
) -> torch.Tensor:
    """Read a file with soundfile as a float32 mono tensor [N], checking what can go wrong.

    Every failure is one line naming the file and what to do about it.
    """
    path = Path(path)
    if not path.is_file():
        raise InterpreterError(f"audio file {path} does not exist; check the manifest or path")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise InterpreterError(
            f"audio file {path} cannot be read ({err}); re-encode it as wav/flac/ogg"
        ) from None
    if data.shape[0] == 0:
        raise InterpreterError(f"audio file {path} is empty; remove it or replace it")
    if data.shape[1] > 1:
        if not downmix:
            raise InterpreterError(
                f"audio file {path} has {data.shape[1]} channels, 1 expected; "
                "convert it to mono or re-run data preparation"
            )
        data = data.mean(axis=1, keepdims=True)
    if not np.isfinite(data).all():
        raise InterpreterError(f"audio file {path} contains NaN or infinite samples; fix the file")
    peak = float(np.abs(data).max())
    if peak > MAX_PEAK:
        raise InterpreterError(
            f"audio file {path} has samples up to {peak:.3g}, far beyond full scale (±1); "
            "normalise it"
        )
    wav = torch.from_numpy(np.ascontiguousarray(data[:, 0]))
    if file_rate != sample_rate:
        if not resample:
            raise InterpreterError(
                f"audio file {path} is at {file_rate} Hz, {sample_rate} Hz expected; "
                "resample it or re-run data preparation"
            )
        wav = resample_wav(wav, file_rate, sample_rate)
    if not allow_silence and float(wav.abs().max()) == 0.0:
        raise InterpreterError(f"audio file {path} is silent; there is nothing to explain")
    return wav


def resample_wav(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio's sinc interpolation, pure torch)."""
    import torchaudio.functional as AF

    gcd = math.gcd(orig_rate, new_rate)
    return AF.resample(wav, orig_rate // gcd, new_rate // gcd)


def save_audio(path: str | Path, wav: torch.Tensor, sample_rate: int) -> None:
    """Write a mono waveform as 32-bit float wav, so nothing is clipped or quantised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.detach().cpu().float().numpy(), sample_rate, subtype="FLOAT")


def mask_at_rate(
    front_end: FrontEnd, mask: torch.Tensor, wav: torch.Tensor, rate: int, keep_above: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpretation and residual of ``wav`` at its own ``rate`` from a [T, F] mask made on
    ``front_end``'s grid: the same seconds per frame and hertz per bin, the band above the
    classifier's Nyquist kept in the interpretation (``keep_above``) or moved to the residual."""
    scale = rate / front_end.sample_rate
    n_fft = 2 * max(1, round(front_end.n_fft * scale / 2))
    hop = max(1, round(front_end.hop_length * scale))
    own = FrontEnd(rate, n_fft, hop_length=hop, compression=front_end.compression).to(wav.device)
    gain = front_end.n_fft / n_fft  # window sums scale with length: keep magnitudes comparable
    spec = own.stft(wav[None]) * gain
    frames = torch.arange(spec.shape[1], device=wav.device) * (hop / rate)
    bins = torch.arange(spec.shape[2], device=wav.device) * (rate / n_fft)
    resized = interpolate_axis(
        mask.to(wav.device), frames * front_end.sample_rate / front_end.hop_length, 0
    )
    beyond = bins > front_end.sample_rate / 2
    positions = (bins * front_end.n_fft / front_end.sample_rate).clamp(max=mask.shape[1] - 1)
    resized = interpolate_axis(resized, positions, 1)
    resized[:, beyond] = 1.0 if keep_above else 0.0
    interpretation, residual = own.listenable(own.spectrum(spec, len(wav)), resized[None])
    return interpretation[0] / gain, residual[0] / gain


def interpolate_axis(values: torch.Tensor, positions: torch.Tensor, axis: int) -> torch.Tensor:
    """``values`` read at fractional ``positions`` along ``axis`` by linear interpolation
    (positions beyond the ends read the end)."""
    positions = positions.clamp(0, values.shape[axis] - 1)
    low = positions.floor().long()
    high = (low + 1).clamp(max=values.shape[axis] - 1)
    weight = (positions - low).to(values.dtype)
    shape = [1] * values.dim()
    shape[axis] = -1
    weight = weight.reshape(shape)
    return values.index_select(axis, low) * (1 - weight) + values.index_select(axis, high) * weight
