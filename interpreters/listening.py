"""What a person hears and sees of one explanation: its wavs and its picture.

The evaluation's examples and the interpret command write the same three sounds (input,
interpretation, residual) and the same three-panel picture through these functions.
"""

from __future__ import annotations

from pathlib import Path

import torch

from interpreters.audio import save_audio


def write_sounds(paths: dict[str, Path], sounds: dict[str, torch.Tensor], rate: int) -> None:
    """Write each waveform of ``sounds`` to ``paths[kind]`` at ``rate``, its samples' rate."""
    for kind, wav in sounds.items():
        save_audio(paths[kind], wav, rate)


def save_explanation_figure(
    path: str | Path,
    compressed: torch.Tensor,
    mask: torch.Tensor,
    title: str,
    frame_rate: float,
    max_freq: float,
) -> None:
    """Three panels over time x frequency: input, mask, and what the mask keeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = compressed.detach().cpu().T.numpy()
    mask_image = mask.detach().cpu().T.numpy()
    extent = (0, spec.shape[1] / frame_rate, 0, max_freq / 1000)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), sharey=True)
    panels = (
        (spec, "input (log1p |X|)", "magma", None),
        (mask_image, "mask", "viridis", (0, 1)),
        (spec * mask_image, "interpretation (mask · input)", "magma", (0, spec.max())),
    )
    for ax, (image, name, cmap, limits) in zip(axes, panels):
        vmin, vmax = limits if limits else (None, None)
        shown = ax.imshow(
            image, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax
        )
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("time (s)")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    axes[0].set_ylabel("frequency (kHz)")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


PANEL_HEIGHT = 160  # pixels per panel in the quick picture
PANEL_MIN_WIDTH = 320
PANEL_MAX_WIDTH = 1600  # a long file's panels are sampled down to this many columns


def save_panels_image(path: str | Path, compressed: torch.Tensor, mask: torch.Tensor) -> None:
    """The same three panels (input, mask, what the mask keeps) as one bare image, without
    axes: about 30x faster than the figure, for the interpret command's many files; the report
    labels the panels and axes around it."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    frames, bins = compressed.shape
    width = min(max(PANEL_MIN_WIDTH, frames), PANEL_MAX_WIDTH)
    cols = np.linspace(0, frames - 1, width).round().astype(int)
    rows = np.linspace(bins - 1, 0, PANEL_HEIGHT).round().astype(int)  # low frequencies at bottom
    spec = compressed.detach().cpu().float().numpy()[cols][:, rows].T  # picked before colouring
    mask_image = np.clip(mask.detach().cpu().float().numpy()[cols][:, rows].T, 0, 1)
    top = max(float(compressed.max()), 1e-8)
    strips = [
        colormaps["magma"](spec / top),
        colormaps["viridis"](mask_image),
        colormaps["magma"](spec * mask_image / top),
    ]
    gap = np.ones((PANEL_HEIGHT, 8, 4))
    image = np.concatenate([strips[0], gap, strips[1], gap, strips[2]], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((image[..., :3] * 255).astype("uint8")).save(path, optimize=False)
