"""L2I, Listen to Interpret (Parekh et al., NeurIPS 2022): the classifier's hidden layers are
decoded into time activations H of a frozen NMF dictionary W, and a small surrogate Θ that
reads only H mimics the classifier. The interpretation keeps the components most relevant to
Θ's score for the explained class, as a ratio mask on the input spectrogram.

Departures from upstream: Θ pools H over time by attention (any length), relevance and masks
are computed for the whole batch at once, and fidelity is scored against the classifier's
decision (upstream compared with a [B, 1] label tensor, i.e. always class 0).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interpreters.audio import FrontEnd, Spectrum
from interpreters.errors import InterpreterError
from interpreters.explainers.base import Evidence, Explainer, Explanation
from interpreters.explainers.nmf import EPS, NMFDictionary, relative_error
from interpreters.models.base import AudioClassifier


class ActivationDecoder(nn.Module):
    """Ψ: chosen hidden maps, pooled into a few frequency bands, resized to the T spectrogram
    frames and fused by addition, then refined to non-negative activations H [B, K, T]."""

    def __init__(
        self,
        hidden_channels: list[int],
        n_components: int,
        layers: list[int],
        channels: int = 64,
        bands: int = 8,
    ) -> None:
        super().__init__()
        self.layers, self.bands = list(layers), bands
        self.projections = nn.ModuleList(
            nn.Conv1d(bands * hidden_channels[i], channels, kernel_size=1) for i in self.layers
        )
        self.refine = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, padding=1),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, n_components, kernel_size=3, padding=1),
            nn.ReLU(),
        )

    def forward(self, hidden: list[torch.Tensor], n_frames: int) -> torch.Tensor:
        """Hidden representations ([B, C, T', F'] or [B, C, T']) -> H [B, K, n_frames]."""
        fused = sum(
            F.interpolate(
                projection(frame_features(hidden[i], self.bands)), size=n_frames, mode="linear"
            )
            for projection, i in zip(self.projections, self.layers)
        )
        return self.refine(fused)


def frame_features(hidden: torch.Tensor, bands: int) -> torch.Tensor:
    """Per frame, the map [B, C, T', F'] averaged into ``bands`` frequency bands,
    [B, bands·C, T'] (a 1D sequence, F' = 1, is one band repeated)."""
    pooled = F.adaptive_avg_pool2d(hidden, (hidden.shape[2], bands))  # [B, C, T', bands]
    return pooled.permute(0, 1, 3, 2).flatten(1, 2)


class AttentionClassifier(nn.Module):
    """Θ: attention pooling of H over time, z [B, K], then a linear map K -> classes."""

    def __init__(self, n_components: int, n_classes: int) -> None:
        super().__init__()
        self.attention = nn.Conv1d(n_components, 1, kernel_size=1)
        self.linear = nn.Linear(n_components, n_classes)

    def pool(self, activations: torch.Tensor) -> torch.Tensor:
        """z = Σ_t a_t H[:, :, t] with a = softmax over time of a score per frame."""
        weights = self.attention(activations).softmax(dim=-1)
        return (activations * weights).sum(dim=-1)

    def forward(self, activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """H [B, K, T] -> (logits [B, C], pooled z [B, K])."""
        pooled = self.pool(activations)
        return self.linear(pooled), pooled


class L2I(Explainer):
    """L2I: the components of a frozen NMF dictionary W most relevant to Θ's score for the
    target, kept as a ratio mask; Ψ (``psi``) and Θ (``theta``) are trained by L2IBrain."""

    def __init__(
        self,
        classifier: AudioClassifier,
        front_end: FrontEnd,
        psi: ActivationDecoder,
        theta: AttentionClassifier,
        dictionary: NMFDictionary,
        relevance_threshold: float = 0.0,
        top_k: int = 3,
        n_listen_components: int = 3,
        name: str = "",
    ) -> None:
        super().__init__(classifier, front_end, name or "L2I")
        if dictionary.n_freqs != front_end.n_freqs:
            raise InterpreterError(
                f"nmf_source: its dictionary has {dictionary.n_freqs} frequency bins but "
                f"the front end gives {front_end.n_freqs}; relearn it with hparams/nmf.yaml "
                "and the same front_end settings"
            )
        self.psi, self.theta, self.dictionary = psi, theta, dictionary
        self.relevance_threshold = relevance_threshold
        self.top_k = top_k
        self.n_listen_components = n_listen_components
        self.method_columns = ["Θ top-1", f"Θ top-{top_k}", "kept comps", "NMF error %"]

    def decompose(self, spectrum: Spectrum, hidden: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Ψ's activations H, Θ's logits and pooled activations, reconstruction error [B]."""
        activations = self.psi(hidden, spectrum.compressed.shape[1])
        theta_logits, pooled = self.theta(activations)
        reconstruction = self.dictionary.reconstruct(activations)
        error = (reconstruction - spectrum.compressed).pow(2).mean(dim=(1, 2))
        return {
            "activations": activations,
            "theta_logits": theta_logits,
            "pooled": pooled,
            "reconstruction_error": error,
            "relative_error": relative_error(spectrum.compressed, reconstruction),
        }

    def relevance(self, pooled: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """r_j = z_j·θ_{c,j} / max_l z_l·θ_{c,l} for the explained class c, [B, K]."""
        theta = getattr(self.theta, "module", self.theta)  # DDP-wrapped while training
        contribution = pooled * theta.linear.weight[target]
        return contribution / contribution.amax(dim=-1, keepdim=True).clamp_min(EPS)

    def component_masks(self, activations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Ratio mask Σ_j weights_j w_j h_j / (WH + ε), clipped to [0, 1], [B, T, F]."""
        kept = self.dictionary.reconstruct(activations * weights[:, :, None])
        whole = self.dictionary.reconstruct(activations)
        return (kept / (whole + EPS)).clamp(0.0, 1.0)

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mask of the components whose relevance for the target passes the threshold."""
        parts = self.decompose(evidence.spectrum, evidence.hidden)
        relevance = self.relevance(parts["pooled"], evidence.target)
        selected = (relevance > self.relevance_threshold).float()
        mask = self.component_masks(parts["activations"], selected)
        return mask, {**parts, "relevance": relevance, "selected": selected}

    def method_metrics(self, explanation: Explanation) -> dict[str, torch.Tensor]:
        """Θ's top-1 / top-k agreement with the classifier's decision, components kept, error."""
        decision = explanation.logits.argmax(dim=-1)
        ranked = explanation.extras["theta_logits"].topk(self.top_k, dim=-1).indices
        return {
            "Θ top-1": 100.0 * (ranked[:, 0] == decision).float(),
            f"Θ top-{self.top_k}": 100.0 * (ranked == decision[:, None]).any(-1).float(),
            "kept comps": explanation.extras["selected"].sum(dim=-1),
            "NMF error %": 100.0 * explanation.extras["relative_error"],
        }

    def extra_sounds(self, explanation: Explanation, count: int) -> list[dict[str, torch.Tensor]]:
        """The most relevant components of each example, each as its own waveform."""
        relevance = explanation.extras["relevance"][:count]
        n_top = min(self.n_listen_components, relevance.shape[-1])
        top = relevance.topk(n_top, dim=-1).indices  # [n, n_top]
        one_hot = F.one_hot(top, relevance.shape[-1]).float().flatten(0, 1)  # [n·n_top, K]
        activations = explanation.extras["activations"][:count].repeat_interleave(n_top, dim=0)
        spectrum = explanation.spectrum
        repeated = Spectrum(
            spectrum.compressed[:count].repeat_interleave(n_top, dim=0),
            spectrum.phase[:count].repeat_interleave(n_top, dim=0),
            spectrum.length,
        )
        sounds = self.front_end.synthesise(repeated, self.component_masks(activations, one_hot))
        return [
            {f"component{j}": sounds[i * n_top + rank] for rank, j in enumerate(top[i].tolist())}
            for i in range(count)
        ]
