#!/usr/bin/env python3
"""Audio quality of trained interpreters without a listener, on the same mixtures:
python recipes/compare_quality.py hparams/lmac.yaml hparams/lmac_td.yaml

Each run's best checkpoint explains every mixture; its interpretation is scored against the true
stem of the class the classifier picked (SI-SDR, log-spectral distance) next to its faithfulness
(AI, AD, FF, Fid-In), so quality can be read at a given faithfulness. The mixture itself is the
do-nothing reference row.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)

# isort: split
import torch  # noqa: E402
from speechbrain.dataio.dataloader import make_dataloader  # noqa: E402

from interpreters import metrics  # noqa: E402
from interpreters.data.dataio import build_datasets  # noqa: E402
from interpreters.errors import InterpreterError  # noqa: E402
from interpreters.recipe import load_hparams  # noqa: E402

COLUMNS = ["SI-SDR", "LSD", "AI", "AD", "FF", "Fid-In", "n"]


def trained_brain(yaml: str, device: str):
    """The run's Brain with its best checkpoint loaded, in eval mode."""
    hparams = load_hparams(yaml, None)
    brain = hparams["brain_class"](
        modules=hparams["modules"],
        hparams=hparams,
        run_opts={"device": device},
        checkpointer=hparams["checkpointer"],
    )
    if brain.checkpointer.recover_if_possible(min_key="loss") is None:
        raise InterpreterError(
            f"{yaml}: no trained checkpoint in {brain.checkpointer.checkpoints_dir}; "
            "train it first with recipes/train.py and the same yaml"
        )
    brain.modules.eval()
    return hparams, brain


def picked_stem(batch, target: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The stem of the explained class per mixture, and whether that class is in the mixture."""
    stems = torch.stack([batch.stem1_sig.data, batch.stem2_sig.data], dim=1).to(device)
    hit = batch.stem_labels.data.to(device) == target[:, None]
    return stems[torch.arange(len(target), device=device), hit.float().argmax(dim=1)], hit.any(1)


def quality(front_end, estimate, stem, lens) -> dict[str, torch.Tensor]:
    """SI-SDR (dB) and log-spectral distance (dB) of a waveform against the true stem."""
    magnitude = front_end.stft(estimate).abs(), front_end.stft(stem).abs()
    return {
        "SI-SDR": metrics.si_sdr(estimate, stem, lens),
        "LSD": metrics.log_spectral_distance(*magnitude),
    }


def score_run(brain, loader, front_end) -> tuple[dict[str, float], dict[str, float]]:
    """One run's quality and faithfulness over the mixtures, and the mixtures' own quality;
    mixtures that do not contain the explained class are left out (``n`` counts the rest)."""
    method, mixture = metrics.MetricAccumulator(), metrics.MetricAccumulator()
    n_found = 0
    for batch in loader:
        wavs, lens = batch.sig.data.to(brain.device), batch.sig.lengths.to(brain.device)
        with torch.no_grad():
            explanation = brain.explain(wavs, lens)
            q = brain.classifier(explanation.interpretation).softmax(-1)
            r = brain.classifier(explanation.residual).softmax(-1)
        stem, found = picked_stem(batch, explanation.target, brain.device)
        values = {
            **quality(front_end, explanation.interpretation, stem, lens),
            **metrics.faithfulness(explanation.probabilities, q, r, explanation.target),
        }
        method.update({k: torch.where(found, v, torch.nan) for k, v in values.items()})
        reference = quality(front_end, wavs, stem, lens)
        mixture.update({k: torch.where(found, v, torch.nan) for k, v in reference.items()})
        n_found += int(found.sum())
    return {**method.summary(), "n": n_found}, {**mixture.summary(), "n": n_found}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("yamls", nargs="+", help="trained interpreter runs (their yaml files)")
    parser.add_argument("--set", default="mixtures", help="manifest with ground-truth stems")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default="results/quality_comparison.md")
    args = parser.parse_args(argv)
    table: dict[str, dict[str, float]] = {}
    try:
        for yaml in args.yamls:
            hparams, brain = trained_brain(yaml, args.device)
            datasets = build_datasets(
                {args.set: hparams["manifests"][args.set]},
                hparams["prepared_folder"],
                hparams["labels"],
                hparams["sample_rate"],
            )
            loader = make_dataloader(datasets[args.set], batch_size=args.batch_size)
            front_end = hparams["front_end"].to(brain.device)
            row, mixture_row = score_run(brain, loader, front_end)
            table[hparams["method_name"]] = row
        table["mixture itself"] = mixture_row
    except InterpreterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = metrics.format_table(table, COLUMNS, name_header="interpretation")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
