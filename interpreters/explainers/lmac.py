"""L-MAC (Paissan, Ravanelli, Subakan, ICML 2024): a decoder of classifier representations
that outputs a sigmoid mask over the spectrogram, trained so the kept part is classified as
the decision and the removed part is not.

Departure from upstream: hidden maps are resized by interpolation rather than transposed
convolutions, so one decoder fits any classifier's hidden shapes (2D maps or 1D sequences).
The loss lives in ``interpreters.training.lmac``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interpreters.audio import FrontEnd
from interpreters.errors import InterpreterError
from interpreters.explainers.base import Evidence, Explainer
from interpreters.models.base import AudioClassifier

NHWC = torch.channels_last


def check_layers(layers: list[int], hidden_channels: list[int], key: str) -> None:
    """One line when a decoder asks for hidden maps the classifier does not have."""
    count = len(hidden_channels)
    if not layers or any(not -count <= i < count for i in layers):
        raise InterpreterError(
            f"{key} {layers}: the classifier gives {count} hidden maps; pick indices in "
            f"{-count}..{count - 1} (set {key})"
        )


class MaskDecoder(nn.Module):
    """Projects chosen hidden maps to a common width, resizes them to the spectrogram, fuses by
    addition with the compressed input, and refines to a sigmoid mask [B, T, F]."""

    def __init__(
        self,
        hidden_channels: list[int],
        layers: list[int] = (-3, -2, -1),
        channels: int = 16,
        use_input: bool = True,
    ) -> None:
        super().__init__()
        self.layers = list(layers)
        check_layers(self.layers, hidden_channels, "decoder_layers")
        self.projections = nn.ModuleList(
            nn.Conv2d(hidden_channels[i], channels, kernel_size=1) for i in self.layers
        )
        self.use_input = use_input
        in_channels = channels + int(use_input)
        self.refine = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 1, kernel_size=1),
        )

    def forward(self, hidden: list[torch.Tensor], compressed: torch.Tensor) -> torch.Tensor:
        """Hidden representations + compressed spectrogram [B, T, F] -> mask [B, T, F]."""
        size = compressed.shape[1:]
        # NHWC (channels-last) makes the full-resolution resizing and convolutions about twice
        # as fast on CPU (oneDNN kernels); the mask is the same to float rounding.
        maps = [hidden[i].contiguous(memory_format=NHWC) for i in self.layers]
        fused = sum(
            F.interpolate(
                projection(hidden_map),
                size=size,
                mode="bilinear",
                align_corners=False,
            )
            for projection, hidden_map in zip(self.projections, maps)
        )
        if self.use_input:
            scale = compressed.amax(dim=(1, 2), keepdim=True).clamp_min(1e-5)
            fused = torch.cat([fused, (compressed / scale).unsqueeze(1)], dim=1)
        fused = fused.contiguous(memory_format=NHWC)
        return torch.sigmoid(self.refine(fused)).squeeze(1)


class LMAC(Explainer):
    """L-MAC: a decoder of the classifier's hidden maps gives the mask. This decoder is not told
    the class, so it explains the decision only (a target other than it is refused)."""

    conditioned = False

    def __init__(
        self, classifier: AudioClassifier, front_end: FrontEnd, decoder: nn.Module, name: str = ""
    ) -> None:
        super().__init__(classifier, front_end, name or "L-MAC")
        self.decoder = decoder

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The decoder's mask; the decision is implicit in the hidden representations."""
        return self.decoder(evidence.hidden, evidence.spectrum.compressed), {}
