#!/usr/bin/env python3
"""LRP on a raw-waveform and a spectrogram classifier, shown in one time-frequency domain:
python recipes/compare_representations.py hparams/compare.yaml

The spectrogram CNN's relevance lies on the front end's log1p |STFT| bins already; the waveform
CNN's relevance on samples is carried to the same bins by the DFT-LRP inspection layer. Writes
side-by-side heatmaps, relevance per frequency band and over time, the share of relevance on
the ground-truth stem of each mixture, listenable LRP interpretations, and summary.md/json.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the compat hooks first)

# isort: split
import torch  # noqa: E402
from speechbrain.dataio.batch import PaddedBatch  # noqa: E402

from interpreters.audio import save_audio  # noqa: E402
from interpreters.data.dataio import build_datasets  # noqa: E402
from interpreters.evaluation import metrics  # noqa: E402
from interpreters.evaluation.comparison import load_settings  # noqa: E402
from interpreters.evaluation.evaluator import picked_stems  # noqa: E402
from interpreters.explainers.base import classify_halves  # noqa: E402
from interpreters.explainers.lrp import LRP, make_composite  # noqa: E402
from interpreters.training.recipe import main  # noqa: E402

KEYS = ["output_folder", "data", "n_clips"]
KEYS += ["batch_size", "n_figures", "n_audio", "classifiers", "front_end", "composite"]
KEYS += ["first_layer_rule", "bands_hz"]


def explain_all(explainer: LRP, batch: PaddedBatch, batch_size: int) -> dict[str, torch.Tensor]:
    """LRP relevance, mask, interpretation and the classifier's view of both halves, batched."""
    parts = []
    with torch.no_grad():
        for wavs in batch.sig.data.split(batch_size):
            explanation = explainer.explain(wavs)
            in_logits, out_logits = classify_halves(explainer.classifier, explanation)
            parts.append(
                {
                    "relevance": explanation.extras["relevance"],
                    "mask": explanation.mask,
                    "interpretation": explanation.interpretation,
                    "target": explanation.target,
                    "logit": explanation.logits.gather(1, explanation.target[:, None])[:, 0],
                    "p": explanation.probabilities,
                    "q": in_logits.softmax(-1),
                    "r": out_logits.softmax(-1),
                }
            )
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def stem_dominance(front_end, batch: PaddedBatch, target: torch.Tensor):
    """Bins where the picked class's stem is louder than the other [B, T, F]; whether the
    decision is a source of the mixture [B]; the picked stem [B, N]."""
    picked, other, found = picked_stems(batch, target, target.device)
    dominant = front_end.stft(picked).abs() > front_end.stft(other).abs()
    return dominant.float(), found, picked


def profiles(relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive relevance per clip normalised to 1, averaged: over frequency [F], time [T]."""
    positive = relevance.clamp_min(0)
    share = positive / positive.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return share.sum(dim=1).mean(dim=0), share.sum(dim=2).mean(dim=0)


def summarise(name, result, batch, front_end, bands_hz) -> dict[str, float]:
    """Numbers of one model: stem share, band shares, sign, conservation, concentration (SPS:
    Gini index of the positive relevance), faithfulness of the relevance mask."""
    relevance = result["relevance"]
    dominant, found, picked = stem_dominance(front_end, batch, result["target"])
    positive = relevance.clamp_min(0)
    on_stem = (positive * dominant).sum(dim=(1, 2)) / positive.sum(dim=(1, 2)).clamp_min(1e-12)
    by_freq, _ = profiles(relevance)
    freqs = torch.linspace(0, front_end.sample_rate / 2, front_end.n_freqs, device=by_freq.device)
    mixture = batch.sig.data.to(relevance.device)
    values = {
        "in-mix %": 100 * found.float().mean().item(),
        "relevance on target stem %": 100 * on_stem[found].mean().item(),
        "target-dominated bins %": 100 * dominant.mean(dim=(1, 2))[found].mean().item(),
        "negative relevance %": 100
        * (relevance.clamp_max(0).abs().sum() / relevance.abs().sum()).item(),
        "Σ relevance / logit": (relevance.sum(dim=(1, 2)) / result["logit"]).median().item(),
        "centroid Hz": (by_freq * freqs).sum().item(),
        "SI-SDRi": metrics.ground_truth(result["interpretation"], mixture, picked)["SI-SDRi"][found]
        .mean()
        .item(),
        "SPS": metrics.sparseness(result["mask"]).mean().item(),
        "MM": metrics.mask_mean(result["mask"]).mean().item(),
    }
    faithful = metrics.faithfulness(result["p"], result["q"], result["r"], result["target"])
    values.update({key: value.mean().item() for key, value in faithful.items()})
    for low, high in zip(bands_hz[:-1], bands_hz[1:]):
        band = (freqs >= low) & (freqs < high if high < bands_hz[-1] else freqs <= high)
        values[f"{low}-{high} Hz %"] = 100 * by_freq[band].sum().item()
    return values


def save_heatmaps(folder: Path, batch, results, front_end, labels, n_figures: int) -> None:
    """Input spectrogram and each model's relevance (signed, symmetric colour scale) per clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compressed = front_end.analyse(batch.sig.data[:n_figures]).compressed
    extent = (0, compressed.shape[1] * front_end.hop_length / front_end.sample_rate, 0, 8)
    for i in range(min(n_figures, len(compressed))):
        fig, axes = plt.subplots(1, 1 + len(results), figsize=(13, 3.4), sharey=True)
        axes[0].imshow(compressed[i].T.cpu(), origin="lower", aspect="auto", extent=extent)
        axes[0].set_title("mixture (log1p |X|)", fontsize=10)
        for ax, (name, result) in zip(axes[1:], results.items()):
            image = result["relevance"][i].T.cpu()
            limit = float(image.abs().max()) or 1.0
            ax.imshow(image, origin="lower", aspect="auto", extent=extent, cmap="seismic")
            ax.images[0].set_clim(-limit, limit)
            label = labels[int(result["target"][i])]
            ax.set_title(f"{name}: LRP for '{label}'", fontsize=10)
        for ax in axes:
            ax.set_xlabel("time (s)")
        axes[0].set_ylabel("frequency (kHz)")
        fig.tight_layout()
        fig.savefig(folder / f"{batch.id[i]}_relevance.png", dpi=80)
        plt.close(fig)


def save_profiles(path: Path, results, front_end) -> None:
    """Average share of positive relevance per frequency bin and per frame, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_freq_ax, by_time_ax) = plt.subplots(1, 2, figsize=(12, 3.4))
    for name, result in results.items():
        by_freq, by_time = profiles(result["relevance"])
        freqs = torch.linspace(0, front_end.sample_rate / 2000, len(by_freq))
        times = torch.arange(len(by_time)) * front_end.hop_length / front_end.sample_rate
        by_freq_ax.plot(freqs, by_freq.cpu(), label=name)
        by_time_ax.plot(times, by_time.cpu(), label=name)
    by_freq_ax.set(xlabel="frequency (kHz)", ylabel="share of relevance", title="per frequency")
    by_time_ax.set(xlabel="time (s)", title="over time")
    by_freq_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_summary(folder: Path, rows: dict, agreement: float, hparams: dict, n_clips: int) -> Path:
    """summary.json and summary.md: one column per model, and how the two strategies differ."""
    (folder / "summary.json").write_text(
        json.dumps({"models": rows, "spearman between models": agreement}, indent=2) + "\n"
    )
    columns = list(next(iter(rows.values())))
    table = metrics.format_table(rows, columns, name_header="model")
    text = [
        f"# LRP ({hparams['composite']}, first layer: {hparams['first_layer_rule']}) on "
        f"{n_clips} mixtures, one time-frequency domain",
        table,
        f"Spearman rank correlation between the two models' relevance maps: {agreement:.2f}",
        "How the two strategies differ: both maps lie on the same STFT grid. The spectrogram "
        "CNN's relevance is propagated down to its own input, the log1p |STFT| bins, so it "
        "can only fall on bins as the model reads them. The waveform CNN's relevance ends on "
        "samples; the DFT-LRP inspection layer (an STFT put in front of the model, relevance "
        "propagated through it with LRP-0, evaluated with FFTs) carries it to the same bins as "
        "Re(Y · conj(ISTFT*(R / x))), conserving the total. A bin's relevance there says how "
        "much that frequency component of the waveform drove the decision through the learnt "
        "filterbank. The table compares where each model's relevance falls.",
    ]
    path = folder / "summary.md"
    path.write_text("\n\n".join(text) + "\n")
    return path


def run(argv: list[str]) -> Path:
    """Explain the mixtures with both classifiers; write pictures, sounds and the summary."""
    _, hparams, run_opts = load_settings(argv, KEYS)
    folder, data = Path(hparams["output_folder"]), hparams["data"]
    data["prepare"]()
    labels = next(iter(hparams["classifiers"].values())).labels
    dataset = build_datasets(
        data["manifests"], data["prepared_folder"], labels, data["sample_rate"]
    )["mixtures"]
    batch = PaddedBatch([dataset[i] for i in range(min(hparams["n_clips"], len(dataset)))])
    results, rows, rate = {}, {}, data["sample_rate"]
    front_end = hparams["front_end"]
    composite = make_composite(hparams["composite"], hparams["first_layer_rule"])
    for name, classifier in hparams["classifiers"].items():
        explainer = LRP(classifier, front_end, composite, name=f"LRP {name}")
        results[name] = explain_all(explainer, batch, hparams["batch_size"])
        rows[name] = summarise(name, results[name], batch, front_end, hparams["bands_hz"])
        for i, uid in enumerate(batch.id[: hparams["n_audio"]]):
            wav = results[name]["interpretation"][i]
            save_audio(folder / "wav" / f"{uid}_{name.split()[0]}_lrp.wav", wav, rate)
    for i, uid in enumerate(batch.id[: hparams["n_audio"]]):
        save_audio(folder / "wav" / f"{uid}_input.wav", batch.sig.data[i], rate)
    (folder / "png").mkdir(parents=True, exist_ok=True)
    save_heatmaps(folder / "png", batch, results, front_end, labels, hparams["n_figures"])
    save_profiles(folder / "png" / "relevance_profiles.png", results, front_end)
    first, second = (result["relevance"] for result in results.values())
    agreement = metrics.spearman_correlation(first, second).mean().item()
    return write_summary(folder, rows, agreement, hparams, len(batch.id))


if __name__ == "__main__":
    sys.exit(main(run, sys.argv[1:]))
