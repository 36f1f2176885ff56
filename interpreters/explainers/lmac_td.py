"""LMAC-TD (Mancini, Paissan, Ravanelli, Subakan, ICASSP 2025): L-MAC in the time domain.

A SepFormer (SpeechBrain's dual-path encoder, masknet and decoder) masks encoder features
of the waveform, mixed with decoded classifier representations: z = (1 − α)·Enc(x) + α·Dec(h).
The listenable interpretation is Dec(Enc(x)⊙mask), the residual Dec(Enc(x)⊙(1 − mask)); no
input phase is reused.

Departure from upstream: upstream freezes an encoder/decoder pair pretrained for
reconstruction; here the pair is initialised as a perfect-reconstruction filter bank (windowed
DCT, ± pairs through the ReLU), so Dec(Enc(x)) = x from the first step, and then frozen or
fine-tuned (with an optional SI-SNR term keeping explanation + residual equal to the input).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from interpreters.audio import FrontEnd
from interpreters.errors import InterpreterError
from interpreters.evaluation import metrics
from interpreters.explainers.base import Evidence, Explainer, Explanation
from interpreters.explainers.conditioning import ClassCondition, conditioned_evidence, level_maps
from interpreters.models.base import AudioClassifier


def init_perfect_reconstruction(encoder: nn.Module, decoder: nn.Module) -> None:
    """Set SepFormer's Conv1d encoder (N filters, kernel K, stride K/2, ReLU) and transposed-conv
    decoder to a sine-windowed orthonormal DCT frame: ReLU(c) − ReLU(−c) = c, so Dec(Enc(x)) = x."""
    n_filters, _, kernel = encoder.conv1d.weight.shape
    if n_filters % (2 * kernel) or encoder.conv1d.stride[0] * 2 != kernel:
        raise InterpreterError(
            f"perfect_reconstruction needs n_filters ({n_filters}) to be a multiple of "
            f"2·kernel_size ({2 * kernel}); change n_filters or set perfect_reconstruction False"
        )
    n = torch.arange(kernel, dtype=torch.float64) + 0.5
    window = torch.sin(math.pi * n / kernel)  # w[n]² + w[n + K/2]² = 1
    dct = torch.cos(math.pi * torch.arange(kernel, dtype=torch.float64)[:, None] * n / kernel)
    dct = dct * math.sqrt(2 / kernel)
    dct[0] /= math.sqrt(2)  # orthonormal DCT-II rows
    atoms = torch.cat([dct * window, -dct * window])  # [2K, K]: each coefficient's two signs
    copies = n_filters // (2 * kernel)
    with torch.no_grad():
        encoder.conv1d.weight.copy_(atoms.repeat(copies, 1).unsqueeze(1))
        decoder.weight.copy_(atoms.repeat(copies, 1).unsqueeze(1) / copies)


class RepresentationDecoder(nn.Module):
    """Classifier hidden maps -> N-channel features on the encoder's frames [B, N, frames]:
    each map is pooled to a few frequency bands, projected by a 1×1 conv, resized in time,
    and the maps are fused by addition (L-MAC's decoder idea, on the encoder's grid).
    ``class_conditioned``: each level gives what L-MAC's decoder reads (``level_maps``: the map
    weighted by the class's Grad-CAM channel weights and the class map, and with ``use_hidden``
    the raw map too), so the decoder is told the class."""

    def __init__(
        self,
        hidden_channels: list[int],
        channels: int,
        layers: list[int] = (-2, -1),
        bands: int = 4,
        class_conditioned: bool = False,
        use_hidden: bool = False,
    ) -> None:
        super().__init__()
        self.layers = list(layers)
        self.class_conditioned, self.use_hidden = class_conditioned, use_hidden
        self.pool = nn.AdaptiveAvgPool2d((None, bands))
        self.projections = nn.ModuleList(
            nn.Conv1d(self.width(hidden_channels[i]) * bands, channels, kernel_size=1)
            for i in self.layers
        )

    def width(self, hidden_channels: int) -> int:
        """Channels one level gives: C, or (with the class) A ⊙ ŵ, the class map and maybe A."""
        if not self.class_conditioned:
            return hidden_channels
        return hidden_channels * (1 + int(self.use_hidden)) + 1

    def forward(
        self, hidden: list[torch.Tensor], frames: int, condition: ClassCondition | None = None
    ) -> torch.Tensor:
        """Hidden representations (and the class condition, when conditioned) ->
        [B, channels, frames]."""
        if self.class_conditioned:
            hidden = [
                level_maps(h, w, cam, use_hidden=self.use_hidden)
                for h, w, cam in zip(hidden, condition.weights, condition.maps)
            ]
        return sum(
            F.interpolate(
                projection(self.pool(hidden[i]).transpose(2, 3).flatten(1, 2)),
                size=frames,
                mode="linear",
                align_corners=False,
            )
            for projection, i in zip(self.projections, self.layers)
        )


class SepformerInterpreter(nn.Module):
    """Encoder, representation decoder, dual-path masknet and decoder of LMAC-TD (a plain
    nn.Module; ``alpha`` weighs the classifier's representations against the waveform's;
    the encoder/decoder pair starts as a perfect-reconstruction frame and may stay frozen)."""

    def __init__(
        self,
        encoder: nn.Module,
        representation_decoder: RepresentationDecoder,
        masknet: nn.Module,
        decoder: nn.Module,
        alpha: float = 0.75,
        perfect_reconstruction: bool = True,
        freeze_codec: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise InterpreterError(f"yaml key alpha must lie in [0, 1], got {alpha}; fix it")
        self.encoder = encoder
        self.representation_decoder = representation_decoder
        self.masknet = masknet
        self.masknet.activation = nn.Sigmoid()  # Dual_Path_Model's final ReLU -> a [0, 1] mask
        self.decoder = decoder
        self.alpha = alpha
        self.kernel = encoder.conv1d.kernel_size[0]
        self.stride = encoder.conv1d.stride[0]
        if perfect_reconstruction:
            init_perfect_reconstruction(encoder, decoder)
        if freeze_codec:
            encoder.requires_grad_(False)
            decoder.requires_grad_(False)

    def padding(self, n_samples: int) -> tuple[int, int]:
        """Samples to add (left, right): one stride each side, so every sample lies under two
        frames, and enough on the right for the frames to tile the waveform exactly."""
        padded = n_samples + 2 * self.stride
        return self.stride, self.stride + (-(padded - self.kernel) % self.stride)

    def forward(
        self,
        wavs: torch.Tensor,
        hidden: list[torch.Tensor],
        condition: ClassCondition | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Waveforms [B, L] + hidden maps (+ the class condition) -> mask [B, frames, N],
        interpretation and residual [B, L], and the encoder features the mask weighs
        [B, frames, N]."""
        length = wavs.shape[-1]
        left, right = self.padding(length)
        features = self.encoder(F.pad(wavs, (left, right)))
        mixed = (1 - self.alpha) * features + self.alpha * self.representation_decoder(
            hidden, features.shape[-1], condition
        )
        mask = self.masknet(mixed)[0]
        kept = torch.cat([features * mask, features * (1 - mask)])
        halves = self.decoder(kept).reshape(2, len(wavs), -1)[..., left : left + length]
        interpretation, residual = halves
        return mask.transpose(1, 2), interpretation, residual, features.transpose(1, 2)


class LMACTD(Explainer):
    """LMAC-TD: the SepFormer ``interpreter`` masks encoder features and decodes waveforms.

    ``Explanation.mask`` is the [B, frames, N] encoder mask; its mask on the STFT grid is the
    one that turns the input into the interpretation. Told the class when its representation
    decoder is ``class_conditioned`` (any class explained); decisions only otherwise.
    """

    method_columns = ["recon SI-SNR"]

    def __init__(
        self,
        classifier: AudioClassifier,
        front_end: FrontEnd,
        interpreter: SepformerInterpreter,
        name: str = "",
    ) -> None:
        super().__init__(classifier, front_end, name or "LMAC-TD")
        self.interpreter = interpreter
        self.conditioned = interpreter.representation_decoder.class_conditioned

    def gather(self, wavs: torch.Tensor, lens: torch.Tensor | None, target) -> Evidence:
        """The shared path, plus the target's class condition when the decoder is told it."""
        if self.conditioned:
            return conditioned_evidence(self, wavs, lens, target)
        return super().gather(wavs, lens, target)

    def render(self, evidence: Evidence) -> Explanation:
        """The decoder's waveforms directly; no input phase is reused."""
        mask, interpretation, residual, features = self.interpreter(
            evidence.wavs, evidence.hidden, evidence.condition
        )
        lens = evidence.lens if evidence.lens is not None else torch.ones(len(evidence.wavs))
        extras = {"input": evidence.wavs, "lens": lens, "features": features}
        return evidence.explanation(mask, interpretation, residual, extras)

    def reconstruction_si_snr(self, explanation: Explanation) -> torch.Tensor:
        """SI-SNR (dB) of interpretation + residual against the input, per example."""
        reconstruction = explanation.interpretation + explanation.residual
        lens = explanation.extras["lens"].to(reconstruction.device)
        return metrics.si_sdr(reconstruction, explanation.extras["input"], lens)

    def method_metrics(self, explanation: Explanation) -> dict[str, torch.Tensor]:
        """How well the two halves add back up to the input."""
        return {"recon SI-SNR": self.reconstruction_si_snr(explanation)}
