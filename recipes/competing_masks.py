#!/usr/bin/env python3
"""Do a class-conditioned explainer's masks for other classes sharpen the decision's?

python recipes/competing_masks.py hparams/lmac.yaml [overrides as for evaluate.py]

On the run's ``mixtures`` set, the decision's mask m_c is scored against the picked stem as
given and after competing with the masks of other classes, all at evaluation time, no training:
against the runner-up class r, m_c(1 - m_r), m_c / (m_c + m_r) and m_c where m_c >= m_r; against
every class k, m_c where it beats every other, m_c / sum_k m_k, m_c weighted by the classifier's
share, and m_c less the mean mask. Prints one table (SI-SDRi, precision, recall, MM) and how
often the runner-up is the mixture's other source.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# isort: off
import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)

# isort: on
import torch  # noqa: E402
from speechbrain.dataio.dataloader import make_dataloader  # noqa: E402

from interpreters.evaluation import metrics  # noqa: E402
from interpreters.evaluation.evaluator import picked_stems, stem_scores  # noqa: E402
from interpreters.evaluation.run import load_method  # noqa: E402

COLUMNS = ["SI-SDRi", "precision", "recall", "MM"]


def every_class_mask(explainer, wavs: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """The explainer's mask for each class of the classifier: [B, C, T, F]."""
    batch = len(wavs)
    return torch.stack(
        [
            explainer.explain(wavs, lens, target=torch.full((batch,), k)).mask
            for k in range(len(explainer.labels))
        ],
        dim=1,
    )


def competing(mask: torch.Tensor, every: torch.Tensor, logits, target) -> dict[str, torch.Tensor]:
    """The decision's mask as given and after each competition rule (module docstring)."""
    rows = torch.arange(len(mask))
    runner_up = logits.topk(2, dim=1).indices[:, 1]
    other = every[rows, runner_up]
    rivals = every.clone()
    rivals[rows, target] = -1.0
    share = logits.softmax(-1)
    pooled = (every * share[:, :, None, None]).sum(1).clamp_min(1e-6)
    mean = every.mean(1)
    return {
        "as given": mask,
        "runner-up: m_c (1 - m_r)": mask * (1 - other),
        "runner-up: m_c / (m_c + m_r)": mask / (mask + other + 1e-6),
        "runner-up: m_c where m_c >= m_r": mask * (mask >= other),
        "every class: m_c where it wins": mask * (mask >= rivals.max(1).values),
        "every class: m_c / sum m_k": mask / every.sum(1).clamp_min(1e-6),
        "every class: m_c p_c / sum p_k m_k": mask * share[rows, target][:, None, None] / pooled,
        "every class: (m_c - mean) / (1 - mean)": (mask - mean) / (1 - mean).clamp_min(1e-3),
    }


def main(argv: list[str]) -> None:
    """Score every rule on the mixtures and print the table."""
    run = load_method(argv)
    explainer = run.explainer.eval()
    front_end = explainer.front_end
    accumulators: dict[str, metrics.MetricAccumulator] = {}
    runner_up_is_other = []
    loader = make_dataloader(run.experiment.datasets["mixtures"], batch_size=16, shuffle=False)
    for batch in loader:
        wavs, lens = batch.sig.data, batch.sig.lengths
        with torch.no_grad():
            explanation = explainer.explain(wavs, lens)
            every = every_class_mask(explainer, wavs, lens)
        target = explanation.target
        stem, other_stem, found = picked_stems(batch, target, explainer.device)
        runner_up = explanation.logits.topk(2, dim=1).indices[:, 1]
        runner_up_is_other.append(found & (batch.stem_labels.data == runner_up[:, None]).any(1))
        magnitudes = {
            "mix": front_end.stft(wavs).abs(),
            "target": front_end.stft(stem).abs(),
            "other": front_end.stft(other_stem).abs(),
        }
        for name, mask in competing(explanation.mask, every, explanation.logits, target).items():
            mask = mask.clamp(0, 1)
            heard, _ = front_end.listenable(explanation.spectrum, mask)
            values = stem_scores(front_end, heard, mask, wavs, stem, magnitudes, lens)
            values = {k: torch.where(found, v, torch.nan) for k, v in values.items()}
            values["MM"] = mask.mean(dim=(1, 2))
            accumulators.setdefault(name, metrics.MetricAccumulator()).update(values)
    share = 100 * float(torch.cat(runner_up_is_other).float().mean())
    print(f"runner-up class is the mixture's other source on {share:.1f} % of the mixtures")
    print("| rule | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "--:|" * len(COLUMNS))
    for name, accumulator in accumulators.items():
        row = accumulator.summary()
        print(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
