"""On-the-fly mixtures of a training batch: what makes "keep only what the decision needs"
learnable without any stems (the classifier's own decisions on the clips are the targets)."""

from __future__ import annotations

import torch


def mix_batch(
    wavs: torch.Tensor,
    lens: torch.Tensor,
    snr_range: tuple[float, float],
    generator: torch.Generator | None = None,
    prob: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip i plus clip (i + 1) mod B at an SNR (dB, clip i over its partner) drawn uniformly
    from ``snr_range``, rescaled to clip i's peak; each clip is mixed with probability ``prob``.
    Returns the mixtures, their relative lengths (the longer of the two) and which were mixed."""
    batch = wavs.shape[0]
    if batch < 2:
        return wavs, lens, torch.zeros(batch, dtype=torch.bool, device=wavs.device)
    partner = wavs.roll(-1, dims=0)
    low, high = snr_range
    snr = (torch.rand(batch, generator=generator) * (high - low) + low).to(wavs.device)
    mixed = (torch.rand(batch, generator=generator) < prob).to(wavs.device)
    tiny = torch.finfo(wavs.dtype).tiny
    energy = wavs.square().sum(dim=1)
    partner_energy = partner.square().sum(dim=1).clamp_min(tiny)
    gain = (energy / (partner_energy * 10 ** (snr / 10))).sqrt() * mixed
    mixture = wavs + gain[:, None] * partner
    peak = wavs.abs().amax(dim=1) / mixture.abs().amax(dim=1).clamp_min(tiny)
    mixture = mixture * peak[:, None]
    new_lens = torch.where(mixed, torch.maximum(lens, lens.roll(-1, dims=0)), lens)
    return mixture, new_lens, mixed
