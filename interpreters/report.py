"""What a person looks at: spectrogram + mask pictures and metric tables (markdown + json)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from interpreters.metrics import format_table


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


def write_metrics(
    folder: str | Path, rows: dict[str, dict[str, float]], columns: list[str]
) -> tuple[Path, Path]:
    """Write ``metrics.json`` (all values) and ``metrics.md`` (the chosen columns)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "metrics.json", folder / "metrics.md"
    json_path.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    present = [c for c in columns if any(c in row for row in rows.values())]
    md_path.write_text(format_table(rows, present) + "\n")
    return json_path, md_path
