"""L-MAC (Paissan, Ravanelli, Subakan, ICML 2024): a decoder of classifier representations
that outputs a sigmoid mask over the spectrogram, trained so the kept part is classified as
the class explained and the removed part is not.

``LMAC`` (the default) tells its decoder the class: Grad-CAM's channel weights and class map
at every hidden level (``conditioning``) feed a coarse-to-fine decoder, so any class can be
explained and a mixture explained source by source. ``UnconditionedLMAC`` is the decoder of
earlier versions, which reads the hidden maps alone and so explains only the decision.
Departures from upstream: hidden maps are resized by interpolation rather than transposed
convolutions, so one decoder fits any classifier's hidden shapes (2D maps or 1D sequences).
The losses live in ``interpreters.training.lmac``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interpreters.audio import FrontEnd
from interpreters.errors import InterpreterError
from interpreters.explainers.base import Evidence, Explainer
from interpreters.explainers.conditioning import (
    ClassCondition,
    conditioned_evidence,
    level_maps,
)
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
        extra_channels: int = 0,
    ) -> None:
        super().__init__()
        self.layers = list(layers)
        check_layers(self.layers, hidden_channels, "decoder_layers")
        self.projections = nn.ModuleList(
            nn.Conv2d(hidden_channels[i], channels, kernel_size=1) for i in self.layers
        )
        self.use_input = use_input
        self.extra_channels = extra_channels
        in_channels = channels + int(use_input) + extra_channels
        self.refine = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 1, kernel_size=1),
        )

    def forward(
        self,
        hidden: list[torch.Tensor],
        compressed: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden representations + compressed spectrogram [B, T, F] (+ ``extra_channels`` maps
        [B, K, T, F] on its grid, e.g. a class activation map) -> mask [B, T, F]."""
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
        if self.extra_channels:
            fused = torch.cat([fused, extra.to(fused.dtype)], dim=1)
        fused = fused.contiguous(memory_format=NHWC)
        return torch.sigmoid(self.refine(fused)).squeeze(1)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3×3 convolutions with ReLUs (a U-Net stage; no batch statistics, so a clip's mask
    does not depend on the rest of its batch)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
        nn.ReLU(),
    )


class InputUNet(nn.Module):
    """U-Net over the normalised input spectrogram whose every decoding stage also reads the
    class-conditioned features: detail as fine as the bins (harmonics), told the class at
    every scale. Widths ``channels`` × 2^level; max-pooling by 2 down, bilinear resizing up."""

    def __init__(self, channels: int, levels: int, image_channels: int = 1) -> None:
        super().__init__()
        widths = [channels * 2**level for level in range(levels + 1)]
        self.down = nn.ModuleList(
            conv_block(image_channels if level == 0 else widths[level - 1], width)
            for level, width in enumerate(widths)
        )
        self.up = nn.ModuleList(
            conv_block(width + channels + (widths[level + 1] if level < levels else 0), width)
            for level, width in enumerate(widths)
        )

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Class features [B, channels, T, F] and the image [B, 1, T, F] -> [B, channels, T, F]."""
        skips, x = [], image
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, kernel_size=2, ceil_mode=True)
            x = block(x.contiguous(memory_format=NHWC))
            skips.append(x)
        x = None
        for level in reversed(range(len(self.up))):
            skip = skips[level]
            parts = [skip, resize(condition, skip.shape[2:])]
            if x is not None:
                parts.append(resize(x, skip.shape[2:]))
            x = self.up[level](torch.cat(parts, dim=1).contiguous(memory_format=NHWC))
        return x


class FrequencyMixer(nn.Module):
    """x + x·W over the frequency axis of [B, C, T, F] maps: one learnt F×F map shared by
    channels and frames, so evidence on one partial can reach every bin a note's harmonics
    occupy, however far apart (convolutions reach only neighbours). W starts at zero."""

    def __init__(self, n_freqs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_freqs, n_freqs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T, F] -> the same shape, F must be the mixer's size."""
        if x.shape[-1] != self.weight.shape[0]:
            raise InterpreterError(
                f"frequency_mixing was built for {self.weight.shape[0]} frequency bins but the "
                f"decoder's grid has {x.shape[-1]}; set n_freqs to the front end's n_freqs "
                "(divided by decode_stride, rounded up)"
            )
        return x + x @ self.weight


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resizing of [B, C, H, W] maps to ``size`` (no-op when already there)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConditionedMaskDecoder(nn.Module):
    """Coarse-to-fine decoder of class-conditioned hidden maps -> sigmoid mask [B, T, F].

    Each chosen level (``layers``; None: every hidden map) contributes the hidden map A
    (``use_hidden``), A ⊙ w/max|w| (``use_weighted``) and the class map (``use_cam``),
    projected by a 1×1 convolution; from
    the deepest level up, the running map is resized to the next level's grid, added, and
    refined by a 3×3 convolution, then resized to the spectrogram (``decode_stride`` > 1: a
    coarser grid, the mask upsampled). ``use_input`` adds the normalised compressed input
    before the last convolution (it makes the mask follow input energy); ``input_layers`` > 0
    adds features learnt from it instead, 3×3 convolutions dilated 1, 2, 4... along frequency,
    for detail finer than the classifier's maps keep (harmonics); ``unet_levels`` > 0 replaces
    the last convolution by an ``InputUNet`` of that depth over the input, reading the class
    features at every scale. ``use_input_gradient`` adds the class's evidence on the input bins
    (``ClassCondition.input_map``, gradient × input) as one more channel there, or of the U-Net.
    ``frequency_mixing`` adds a ``FrequencyMixer`` over the ``n_freqs`` bins (the front end's) of
    the decoded grid before that last stage: harmonics far apart can be kept together.
    """

    def __init__(
        self,
        hidden_channels: list[int],
        layers: list[int] | None = None,
        channels: int = 8,
        use_hidden: bool = True,
        use_weighted: bool = True,
        use_cam: bool = True,
        use_input: bool = False,
        decode_stride: int = 1,
        mask_bias: float = 0.0,
        input_layers: int = 0,
        unet_levels: int = 0,
        use_input_gradient: bool = False,
        frequency_mixing: bool = False,
        n_freqs: int | None = None,
    ) -> None:
        super().__init__()
        if frequency_mixing and not n_freqs:
            raise InterpreterError(
                "frequency_mixing needs n_freqs (the front end's frequency bins) for the decoder"
            )
        if unet_levels and (input_layers or use_input):
            raise InterpreterError(
                "unet_levels > 0 reads the input spectrogram itself; set input_layers: 0 and "
                "use_input: False with it"
            )
        count = len(hidden_channels)
        layers = list(range(count)) if layers is None else list(layers)
        check_layers(layers, hidden_channels, "decoder_layers")
        self.layers = sorted({i % count for i in layers})  # shallow to deep
        self.use_hidden, self.use_weighted, self.use_cam = use_hidden, use_weighted, use_cam
        self.use_input, self.decode_stride = use_input, decode_stride
        self.use_input_gradient = use_input_gradient
        widths = [
            hidden_channels[i] * (use_hidden + use_weighted) + int(use_cam) for i in self.layers
        ]
        self.projections = nn.ModuleList(nn.Conv2d(w, channels, kernel_size=1) for w in widths)
        self.stages = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1) for _ in self.layers
        )
        self.input_net = nn.Sequential(
            *(
                layer
                for i in range(input_layers)
                for layer in (
                    nn.Conv2d(
                        1 if i == 0 else channels,
                        channels,
                        kernel_size=3,
                        padding=(1, 2**i),
                        dilation=(1, 2**i),
                    ),
                    nn.ReLU(),
                )
            )
        )
        extra = int(use_input) + channels * int(input_layers > 0) + int(use_input_gradient)
        self.unet = (
            InputUNet(channels, unet_levels, 1 + int(use_input_gradient)) if unet_levels else None
        )
        if self.unet is None:
            self.final = nn.Conv2d(channels + extra, channels, kernel_size=3, padding=1)
        self.out = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.constant_(self.out.bias, mask_bias)
        self.mixer = FrequencyMixer(-(-n_freqs // decode_stride)) if frequency_mixing else None

    def input_evidence(self, condition: ClassCondition, size, grid) -> list[torch.Tensor]:
        """The class's gradient × input map on the spectrogram's bins, pooled to the grid."""
        if condition.input_map is None:
            raise InterpreterError(
                "use_input_gradient needs a classifier that reads a spectrogram (its "
                "feature_front_end); this one does not: set use_input_gradient: False"
            )
        return [F.adaptive_avg_pool2d(resize(condition.input_map, size), grid)]

    def level_input(self, hidden_map, weight, cam) -> torch.Tensor:
        """What one level contributes: A, A ⊙ ŵ, the class map (as configured)."""
        return level_maps(hidden_map, weight, cam, self.use_hidden, self.use_weighted, self.use_cam)

    def forward(
        self, hidden: list[torch.Tensor], compressed: torch.Tensor, condition: ClassCondition
    ) -> torch.Tensor:
        """Hidden maps, compressed spectrogram [B, T, F], the class condition -> mask."""
        size = tuple(compressed.shape[1:])
        x = None
        for index, projection, stage in zip(
            reversed(self.layers), reversed(self.projections), reversed(self.stages)
        ):
            level = self.level_input(hidden[index], condition.weights[index], condition.maps[index])
            level = projection(level.contiguous(memory_format=NHWC))
            if x is not None:
                level = level + F.interpolate(
                    x, size=level.shape[2:], mode="bilinear", align_corners=False
                )
            x = F.relu(stage(level))
        grid = tuple(-(-n // self.decode_stride) for n in size)
        x = F.interpolate(x, size=grid, mode="bilinear", align_corners=False)
        if self.mixer is not None:
            x = self.mixer(x)
        if self.use_input or len(self.input_net) or self.unet is not None:
            scale = compressed.amax(dim=(1, 2), keepdim=True).clamp_min(1e-5)
            image = F.adaptive_avg_pool2d((compressed / scale).unsqueeze(1), grid)
        evidence = self.input_evidence(condition, size, grid) if self.use_input_gradient else []
        if self.unet is not None:
            logits = self.out(self.unet(x, torch.cat([image, *evidence], dim=1)))
        else:
            parts = [image] if self.use_input else []
            if len(self.input_net):
                parts.append(self.input_net(image.contiguous(memory_format=NHWC)))
            if parts or evidence:
                x = torch.cat([x, *parts, *evidence], dim=1)
            logits = self.out(F.relu(self.final(x.contiguous(memory_format=NHWC))))
        if grid != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits).squeeze(1)


class LMAC(Explainer):
    """L-MAC with a class-conditioned decoder: explains the decision or any class asked."""

    def __init__(
        self,
        classifier: AudioClassifier,
        front_end: FrontEnd,
        decoder: ConditionedMaskDecoder,
        name: str = "",
    ) -> None:
        super().__init__(classifier, front_end, name or "L-MAC")
        self.decoder = decoder

    def gather(self, wavs: torch.Tensor, lens: torch.Tensor | None, target) -> Evidence:
        """As the shared path, plus the class condition of the target at every hidden level."""
        return conditioned_evidence(self, wavs, lens, target)

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The decoder's mask for the class the condition carries."""
        return self.decoder(evidence.hidden, evidence.spectrum.compressed, evidence.condition), {}


class UnconditionedLMAC(Explainer):
    """L-MAC as in earlier versions: a decoder of the classifier's hidden maps that is not told
    the class, so it explains the decision only (a target other than it is refused)."""

    conditioned = False

    def __init__(
        self, classifier: AudioClassifier, front_end: FrontEnd, decoder: nn.Module, name: str = ""
    ) -> None:
        super().__init__(classifier, front_end, name or "L-MAC (unconditioned)")
        self.decoder = decoder

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The decoder's mask; the decision is implicit in the hidden representations."""
        return self.decoder(evidence.hidden, evidence.spectrum.compressed), {}
