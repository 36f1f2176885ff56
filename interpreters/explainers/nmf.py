"""An NMF dictionary W of spectral components, pre-learnt on log1p |X| for L2I.

Learning is mini-batch multiplicative updates (Lee & Seung, Euclidean cost): for each batch the
activations H are solved with W fixed, then W takes a few multiplicative steps on that batch.
Updates keep W non-negative; its columns are L2-normalised after each step. Unlike upstream,
batches hold many clips: the clips' frames are stacked, so one update sees the whole batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from interpreters.config import load_yaml
from interpreters.errors import InterpreterError
from interpreters.sources import fetch_files, load_state

EPS = 1e-8


class NMFDictionary(nn.Module):
    """W [F, K] with non-negative, unit-norm columns; solves and reconstructs activations."""

    def __init__(self, n_freqs: int, n_components: int, seed: int = 0) -> None:
        super().__init__()
        self.n_freqs, self.n_components = n_freqs, n_components
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("W", normalise(torch.rand(n_freqs, n_components, generator=generator)))

    def reconstruct(self, activations: torch.Tensor) -> torch.Tensor:
        """Activations H [B, K, T] -> WH as a spectrogram [B, T, F]."""
        return torch.einsum("fk,bkt->btf", self.W, activations)

    def activations(self, spectrogram: torch.Tensor, n_iter: int = 50) -> torch.Tensor:
        """Non-negative H [B, K, T] with WH ≈ spectrogram [B, T, F], W fixed (multiplicative)."""
        V = spectrogram.transpose(1, 2)  # [B, F, T]
        numerator = torch.einsum("fk,bft->bkt", self.W, V)
        gram = self.W.T @ self.W
        H = torch.full_like(numerator, float(V.mean()) / self.n_components + EPS)
        for _ in range(n_iter):
            H = H * numerator / (torch.einsum("kl,blt->bkt", gram, H) + EPS)
        return H

    @torch.no_grad()
    def update(self, spectrogram: torch.Tensor, activations: torch.Tensor, n_iter: int = 1) -> None:
        """Multiplicative steps on W for one batch (frames of all clips stacked), renormalised."""
        V = spectrogram.transpose(1, 2)
        numerator = torch.einsum("bft,bkt->fk", V, activations)
        gram = torch.einsum("bkt,blt->kl", activations, activations)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # DDP: every process steps with the statistics of the global batch, so W stays one.
            torch.distributed.all_reduce(numerator)
            torch.distributed.all_reduce(gram)
        W = self.W
        for _ in range(n_iter):
            W = W * numerator / (W @ gram + EPS)
        self.W.copy_(normalise(W))


def normalise(W: torch.Tensor) -> torch.Tensor:
    """Columns scaled to unit L2 norm (a zero column stays zero)."""
    return W / W.norm(dim=0, keepdim=True).clamp_min(EPS)


def relative_error(spectrogram: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Per-example ‖V − WH‖² / ‖V‖², shape [B]."""
    error = (spectrogram - reconstruction).pow(2).sum(dim=(1, 2))
    return error / spectrogram.pow(2).sum(dim=(1, 2)).clamp_min(EPS)


def export_dictionary(dictionary: NMFDictionary, folder: str | Path) -> Path:
    """Write ``hyperparams.yaml`` + ``nmf.ckpt``, the folder l2i.yaml's nmf_source points at."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(
        "# An NMF dictionary exported by interpreters (hparams/nmf.yaml).\n"
        f"nmf: !new:{NMFDictionary.__module__}.NMFDictionary\n"
        f"    n_freqs: {dictionary.n_freqs}\n    n_components: {dictionary.n_components}\n"
    )
    torch.save(dictionary.state_dict(), folder / "nmf.ckpt")
    return folder


def load_dictionary(source: str, savedir: str | Path, key: str = "nmf_source") -> NMFDictionary:
    """A frozen dictionary from a folder or hub id holding hyperparams.yaml + nmf.ckpt."""
    files = fetch_files(source, ["nmf"], savedir, key)
    dictionary = load_yaml(files["hyperparams"]).get("nmf")
    if not isinstance(dictionary, NMFDictionary):
        raise InterpreterError(
            f"{key} {source}: hyperparams.yaml defines no 'nmf' dictionary; "
            "export one with recipes/train.py hparams/nmf.yaml"
        )
    load_state(dictionary, files["nmf"], key)
    return dictionary.eval().requires_grad_(False)


def save_dictionary_figure(W: torch.Tensor, path: str | Path, max_freq: float) -> None:
    """Heat map of the components (frequency x component), ordered by their peak frequency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    W = W.detach().cpu()
    order = W.argmax(dim=0).argsort()
    fig, ax = plt.subplots(figsize=(max(6, W.shape[1] / 8), 4))
    shown = ax.imshow(
        W[:, order].numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(-0.5, W.shape[1] - 0.5, 0, max_freq / 1000),
    )
    ax.set_xlabel("component (ordered by peak frequency)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(f"NMF dictionary: {W.shape[1]} components (unit L2 norm)")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
