#!/usr/bin/env python3
"""Audio quality of trained interpreters without a listener, on the same mixtures:
python recipes/compare_quality.py hparams/lmac.yaml hparams/lmac_td.yaml
python recipes/compare_quality.py hparams/lmac.yaml \
    "hparams/lmac_td.yaml --alpha=1.0 --method_name=LMAC-TD-a1 --output_folder=results/my_td"

Each run's best checkpoint explains every mixture; its interpretation is scored against the true
stem of the class the classifier picked (SI-SDR, log-spectral distance) next to its faithfulness
(AI, AD, FF, Fid-In), so quality can be read at a given faithfulness. The mixture itself is the
do-nothing reference row.
"""

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)

# isort: split
import torch  # noqa: E402
from speechbrain.dataio.dataloader import make_dataloader  # noqa: E402

from interpreters.errors import InterpreterError  # noqa: E402
from interpreters.evaluation import metrics  # noqa: E402
from interpreters.evaluation.evaluator import faithfulness_scores, picked_stems  # noqa: E402
from interpreters.evaluation.run import load_method  # noqa: E402
from interpreters.explainers.base import classify_halves  # noqa: E402

COLUMNS = ["SI-SDR", "LSD", "AI", "AD", "FF", "Fid-In", "n"]


def quality(front_end, estimate, stem, lens) -> dict[str, torch.Tensor]:
    """SI-SDR (dB) and log-spectral distance (dB) of a waveform against the true stem."""
    magnitude = front_end.stft(estimate).abs(), front_end.stft(stem).abs()
    return {
        "SI-SDR": metrics.si_sdr(estimate, stem, lens),
        "LSD": metrics.log_spectral_distance(*magnitude),
    }


def score_run(explainer, loader) -> tuple[dict[str, float], dict[str, float]]:
    """One run's quality and faithfulness over the mixtures, and the mixtures' own quality;
    mixtures that do not contain the explained class are left out (``n`` counts the rest)."""
    method, mixture = metrics.MetricAccumulator(), metrics.MetricAccumulator()
    front_end, device = explainer.front_end, explainer.device
    n_found = 0
    for batch in loader:
        wavs, lens = batch.sig.data.to(device), batch.sig.lengths.to(device)
        with torch.no_grad():
            explanation = explainer.explain(wavs, lens)
            heard = classify_halves(explainer.classifier, explanation)
        stem, _, found = picked_stems(batch, explanation.target, device)
        values = {
            **quality(front_end, explanation.interpretation, stem, lens),
            **faithfulness_scores(explanation, *heard),
        }
        method.update({k: torch.where(found, v, torch.nan) for k, v in values.items()})
        reference = quality(front_end, wavs, stem, lens)
        mixture.update({k: torch.where(found, v, torch.nan) for k, v in reference.items()})
        n_found += int(found.sum())
    return {**method.summary(), "n": n_found}, {**mixture.summary(), "n": n_found}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "yamls",
        nargs="+",
        help="trained interpreter runs: a yaml file, or a quoted yaml file and its overrides",
    )
    parser.add_argument("--set", default="mixtures", help="manifest with ground-truth stems")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default="results/quality_comparison.md")
    args = parser.parse_args(argv)
    table: dict[str, dict[str, float]] = {}
    try:
        for yaml in args.yamls:
            run = load_method([*shlex.split(yaml), f"--device={args.device}"])
            if run.explainer.name in table:
                raise InterpreterError(
                    f"two runs are both named {run.explainer.name!r}; give one its own "
                    "--method_name in its quoted overrides"
                )
            dataset = run.experiment.datasets[args.set]
            loader = make_dataloader(dataset, batch_size=args.batch_size)
            row, mixture_row = score_run(run.explainer, loader)
            table[run.explainer.name] = row
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
