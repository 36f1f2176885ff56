"""L2I, Listen to Interpret (Parekh et al., NeurIPS 2022): the classifier's hidden layers are
decoded into time activations H of a frozen NMF dictionary W, and a small surrogate Θ that
reads only H mimics the classifier. The interpretation keeps the components most relevant to
Θ's score for the explained class, as a ratio mask on the input spectrogram.

Departures from upstream: Θ pools H over time by attention (any length), relevance and masks
are computed for the whole batch at once, and fidelity is scored against the classifier's
decision (upstream compared with a [B, 1] label tensor, i.e. always class 0).
"""

from __future__ import annotations

from pathlib import Path

import speechbrain as sb
import torch
import torch.nn as nn
import torch.nn.functional as F
from speechbrain.utils.distributed import if_main_process

from interpreters.audio import Spectrum, save_audio
from interpreters.brain import Explanation, InterpreterBrain
from interpreters.errors import InterpreterError
from interpreters.methods.nmf import EPS, relative_error


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
    """Per frame, the map averaged into ``bands`` frequency bands, [B, bands·C, T'] (a 1D
    sequence is one band, repeated)."""
    if hidden.dim() == 3:
        hidden = hidden.unsqueeze(-1)
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


class L2I(InterpreterBrain):
    """L2I: loss α·‖WH − log1p|X|‖² + β·‖H‖₁ + λ_fid·CE(Θ(H), softmax f(x)/τ)."""

    required_hparams = InterpreterBrain.required_hparams + [
        "dictionary",
        "alpha",
        "beta",
        "lambda_fid",
        "temperature",
        "relevance_threshold",
        "top_k",
        "n_listen_components",
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dictionary = self.hparams.dictionary.to(self.device)
        if self.dictionary.n_freqs != self.front_end.n_freqs:
            raise InterpreterError(
                f"nmf_source: its dictionary has {self.dictionary.n_freqs} frequency bins but "
                f"the front end gives {self.front_end.n_freqs}; relearn it with hparams/nmf.yaml "
                "and the same front_end settings"
            )
        top_k = f"Θ top-{self.hparams.top_k}"
        self.method_columns = ["Θ top-1", top_k, "kept comps", "NMF error %"]

    # ---- the method -----------------------------------------------------------------------

    def decompose(self, spectrum: Spectrum, hidden: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Ψ's activations H, Θ's logits and pooled activations, reconstruction error [B]."""
        activations = self.modules.psi(hidden, spectrum.compressed.shape[1])
        theta_logits, pooled = self.modules.theta(activations)
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
        theta = getattr(self.modules.theta, "module", self.modules.theta)  # DDP-wrapped or not
        contribution = pooled * theta.linear.weight[target]
        return contribution / contribution.amax(dim=-1, keepdim=True).clamp_min(EPS)

    def component_masks(self, activations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Ratio mask Σ_j weights_j w_j h_j / (WH + ε), clipped to [0, 1], [B, T, F]."""
        kept = self.dictionary.reconstruct(activations * weights[:, :, None])
        whole = self.dictionary.reconstruct(activations)
        return (kept / (whole + EPS)).clamp(0.0, 1.0)

    def interpret(self, spectrum: Spectrum, hidden: list[torch.Tensor], target: torch.Tensor):
        """Mask of the components whose relevance for ``target`` passes the threshold."""
        parts = self.decompose(spectrum, hidden)
        relevance = self.relevance(parts["pooled"], target)
        selected = (relevance > self.hparams.relevance_threshold).float()
        mask = self.component_masks(parts["activations"], selected)
        return mask, {**parts, "relevance": relevance, "selected": selected}

    def l2i_loss(self, parts: dict[str, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        """Reconstruction + sparsity of H + Θ's cross-entropy to the classifier's soft decision."""
        hp = self.hparams
        teacher = (logits / hp.temperature).softmax(dim=-1)
        fidelity = -(teacher * parts["theta_logits"].log_softmax(dim=-1)).sum(dim=-1).mean()
        return (
            hp.alpha * parts["reconstruction_error"].mean()
            + hp.beta * parts["activations"].abs().mean()
            + hp.lambda_fid * fidelity
        )

    def interpreter_loss(
        self, explanation: Explanation, in_logits: torch.Tensor, out_logits: torch.Tensor
    ) -> torch.Tensor:
        """The L2I loss; the classifier's view of the two halves plays no part in it."""
        return self.l2i_loss(explanation.extras, explanation.logits)

    def method_metrics(self, explanation: Explanation) -> dict[str, torch.Tensor]:
        """Θ's top-1 / top-k agreement with the classifier's decision, components kept, error."""
        decision = explanation.logits.argmax(dim=-1)
        ranked = explanation.extras["theta_logits"].topk(self.hparams.top_k, dim=-1).indices
        return {
            "Θ top-1": 100.0 * (ranked[:, 0] == decision).float(),
            f"Θ top-{self.hparams.top_k}": 100.0 * (ranked == decision[:, None]).any(-1).float(),
            "kept comps": explanation.extras["selected"].sum(dim=-1),
            "NMF error %": 100.0 * explanation.extras["relative_error"],
        }

    # ---- training: only Ψ and Θ, no resynthesis ------------------------------------------------

    def compute_forward(self, batch, stage):
        """While training, skip the masks' resynthesis and the classifier's two extra passes."""
        if stage != sb.Stage.TRAIN:
            return super().compute_forward(batch, stage)
        wavs = batch.sig.data.to(self.device)
        with torch.no_grad():
            logits, hidden = self.classifier.forward_with_hidden(wavs)
        return self.decompose(self.front_end.analyse(wavs), hidden), logits

    def compute_objectives(self, outputs, batch, stage):
        """The L2I loss while training; the shared loss-plus-metrics path otherwise."""
        if stage != sb.Stage.TRAIN:
            return super().compute_objectives(outputs, batch, stage)
        return self.l2i_loss(*outputs)

    # ---- listening aid ------------------------------------------------------------------------

    def save_examples(self, batch, explanation: Explanation) -> None:
        """The shared examples, plus the most relevant components each as its own wav."""
        first = self.n_saved
        super().save_examples(batch, explanation)
        count = self.n_saved - first
        if not if_main_process() or count == 0:
            return
        relevance = explanation.extras["relevance"][:count]
        n_top = min(self.hparams.n_listen_components, relevance.shape[-1])
        top = relevance.topk(n_top, dim=-1).indices  # [n, n_top]
        one_hot = F.one_hot(top, relevance.shape[-1]).float().flatten(0, 1)  # [n·n_top, K]
        activations = explanation.extras["activations"][:count].repeat_interleave(n_top, dim=0)
        spectrum = self.front_end.analyse(batch.sig.data[:count].to(self.device))
        spectrum = Spectrum(
            spectrum.compressed.repeat_interleave(n_top, dim=0),
            spectrum.phase.repeat_interleave(n_top, dim=0),
            spectrum.length,
        )
        sounds = self.front_end.synthesise(spectrum, self.component_masks(activations, one_hot))
        folder = Path(self.hparams.output_folder) / "examples" / self.eval_set / "wav"
        for i, uid in enumerate(batch.id[:count]):
            label = self.classifier.labels[int(explanation.target[i])]
            for rank, component in enumerate(top[i].tolist()):
                path = folder / f"{uid}_{label}_component{component}.wav"
                save_audio(path, sounds[i * n_top + rank], self.classifier.sample_rate)
