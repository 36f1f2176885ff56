"""Trivial explainers: rows every comparison carries, so a score can be read against what an
explanation that knows nothing about the classifier gets.

- keep-all: the mask of ones (the interpretation is the input itself);
- input energy: the input's own compressed magnitude, normalised to max 1 per clip;
- random: uniform noise with a given mean mask value, fixed by a seed.
"""

from __future__ import annotations

import torch

from interpreters.audio import FrontEnd
from interpreters.explainers.base import Evidence, Explainer
from interpreters.models.base import AudioClassifier


class KeepAll(Explainer):
    """Keeps everything: mask 1 on every bin."""

    def __init__(self, classifier: AudioClassifier, front_end: FrontEnd, name: str = "") -> None:
        super().__init__(classifier, front_end, name or "keep-all")

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Ones on the front end's grid."""
        return torch.ones_like(evidence.spectrum.compressed), {}


class InputEnergy(Explainer):
    """Keeps what is loud: the compressed magnitude over its maximum, per clip."""

    def __init__(self, classifier: AudioClassifier, front_end: FrontEnd, name: str = "") -> None:
        super().__init__(classifier, front_end, name or "input energy")

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """log1p|X| (or the front end's compression) scaled to [0, 1] per clip."""
        compressed = evidence.spectrum.compressed
        peak = compressed.flatten(1).amax(dim=1).clamp_min(torch.finfo(compressed.dtype).tiny)
        return compressed / peak[:, None, None], {}


class RandomMask(Explainer):
    """Uniform random values with mean ``mean``, the same for a given clip shape and seed."""

    def __init__(
        self,
        classifier: AudioClassifier,
        front_end: FrontEnd,
        mean: float = 0.5,
        seed: int = 0,
        name: str = "",
    ) -> None:
        super().__init__(classifier, front_end, name or f"random (mean {mean:g})")
        self.mean = float(mean)
        self.seed = seed

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """U(0, 2·mean) for a mean up to 0.5, 1 − U(0, 2·(1 − mean)) above: in [0, 1]."""
        compressed = evidence.spectrum.compressed
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.rand(compressed.shape, generator=generator, dtype=compressed.dtype)
        if self.mean <= 0.5:
            mask = 2 * self.mean * noise
        else:
            mask = 1 - 2 * (1 - self.mean) * noise
        return mask.to(compressed.device), {}
