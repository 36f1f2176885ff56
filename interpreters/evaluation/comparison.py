"""Several interpreters on one classifier and one data set: one table.

For each method yaml listed in a comparison yaml: every metric on every evaluation set (through
the method's own ``run_evaluation``), explanation time per clip, and the model-randomisation
sanity check (Adebayo et al. 2018): classifier layers are re-initialised from the top, cascading,
and the explanation of the same class is compared with the original by Spearman rank
correlation and SSIM. An explanation that stays the same on a random model fails it.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn as nn
from speechbrain.dataio.batch import PaddedBatch

from interpreters.errors import InterpreterError
from interpreters.evaluation import metrics
from interpreters.evaluation.evaluator import (
    FAITHFULNESS_COLUMNS,
    GROUND_TRUTH_COLUMNS,
    METRICS_NOTE,
    ORACLE,
    OVERLAP_COLUMNS,
)
from interpreters.evaluation.run import load_method
from interpreters.experiment import load_hparams, parse
from interpreters.explainers.base import Explainer

logger = logging.getLogger(__name__)

COMPARISON_KEYS = [
    "output_folder",
    "method_list",
    "shared_overrides",
    "timing_clips",
    "sanity_clips",
    "sanity_seed",
    "sanity_threshold",
]


def layer_groups(classifier: nn.Module) -> list[tuple[str, nn.Module]]:
    """The classifier's parametrised top-level layers, input to output (module lists unrolled)."""
    groups = []
    for name, child in classifier.named_children():
        members = child.named_children() if isinstance(child, nn.ModuleList) else [("", child)]
        for sub, module in members:
            if any(True for _ in module.parameters()):
                groups.append((f"{name}.{sub}" if sub else name, module))
    return groups


def randomised_cascade(classifier: nn.Module, seed: int) -> Iterator[tuple[str, nn.Module]]:
    """Copies of the classifier with layers re-initialised from the top, one more each step."""
    model = copy.deepcopy(classifier)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for name, group in reversed(layer_groups(model)):
            for module in group.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()
            yield name, model
    finally:
        torch.random.set_rng_state(generator_state)


def first_clips(dataset, n_clips: int) -> PaddedBatch:
    """The first ``n_clips`` items of a dataset as one padded batch."""
    return PaddedBatch([dataset[i] for i in range(min(n_clips, len(dataset)))])


def seconds_per_clip(explainer: Explainer, batch: PaddedBatch, batch_size: int) -> float:
    """Wall time of ``explain`` per clip over the batch, in chunks of ``batch_size``."""
    wavs = batch.sig.data.to(explainer.device)
    lens = batch.sig.lengths.to(explainer.device)
    elapsed = 0.0
    with torch.no_grad():
        for chunk, chunk_lens in zip(wavs.split(batch_size), lens.split(batch_size)):
            start = time.perf_counter()
            explainer.explain(chunk, chunk_lens)
            elapsed += time.perf_counter() - start
    return elapsed / len(wavs)


def sanity_check(explainer: Explainer, batch: PaddedBatch, seed: int) -> dict[str, dict]:
    """Mean Spearman and SSIM between the original explanation and that of each randomised
    copy of the classifier (the explainer's own classifier is never touched), keyed by the
    last layer re-initialised. A class-conditioned explainer explains the same class on every
    copy; one that is not explains each copy's own decision."""
    wavs = batch.sig.data.to(explainer.device)
    with torch.no_grad():
        explanation = explainer.explain(wavs)
        reference = explainer.time_frequency_mask(explanation, wavs)
        own_domain = reference.shape != explanation.mask.shape
        target = explanation.target if explainer.conditioned else None
        steps = {}
        for name, model in randomised_cascade(explainer.classifier, seed):
            randomised = explainer.with_classifier(model)
            other = randomised.explain(wavs, target=target)
            mask = randomised.time_frequency_mask(other, wavs)
            steps[name] = {
                "spearman": rank_similarity(reference, mask).mean().item(),
                "ssim": metrics.structural_similarity(reference, mask).mean().item(),
            }
            if own_domain:  # e.g. LMAC-TD's encoder mask, beside the STFT mask it implies
                own = metrics.spearman_correlation(explanation.mask, other.mask)
                steps[name]["spearman (own mask)"] = own.mean().item()
    return steps


def rank_similarity(reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Spearman correlation per example, and 1 where the two maps are the same: a constant map
    (keep-all) that no randomisation changes has no rank correlation but depends on nothing."""
    same = (reference - mask).abs().flatten(1).amax(dim=1) <= 1e-6
    spearman = metrics.spearman_correlation(reference, mask)
    return torch.where(same, torch.ones_like(spearman), spearman)


def method_argv(entry: dict, shared: dict, device: str, key: str) -> list[str]:
    """Command line for one method: its yaml, the shared overrides, then its own."""
    if not isinstance(entry, dict) or "hparams" not in entry:
        raise InterpreterError(f"{key}: each entry of 'methods' needs an 'hparams' yaml path")
    overrides = {**shared, **(entry.get("overrides") or {})}
    return [entry["hparams"], *(f"--{k}={v}" for k, v in overrides.items()), f"--device={device}"]


def method_entries(
    settings: dict, device: str, key: str, extra: dict | None = None
) -> list[tuple[str, list[str]]]:
    """(name, command line) of every method in the yaml's ``method_list`` (name None: the
    explainer's own); ``extra`` adds overrides by name (e.g. the benchmark's 50-step IG)."""
    entries = []
    for entry in settings["method_list"]["methods"]:
        *command, device_flag = method_argv(entry, settings["shared_overrides"], device, key)
        more = (extra or {}).get(entry.get("name"), {}) or {}
        command += [f"--{k}={v}" for k, v in more.items()]
        name = entry.get("name")
        if name is not None and name in dict(entries):
            raise InterpreterError(
                f"{key}: two methods are named '{name}'; give each entry of 'methods' its own name"
            )
        entries.append((name, [*command, device_flag]))
    return entries


def evaluate_method(argv: list[str], settings: dict) -> tuple[dict, dict]:
    """One method's table rows with time per clip, and its sanity steps."""
    run = load_method(argv)
    rows = run.evaluate()
    test = run.experiment.datasets["test"]
    batch_size = run.hparams["test_dataloader_opts"]["batch_size"]
    per_clip = seconds_per_clip(
        run.explainer, first_clips(test, settings["timing_clips"]), batch_size
    )
    rows = {
        name: row if name.startswith(ORACLE) else {**row, "s/clip": per_clip}
        for name, row in rows.items()
    }
    clips = first_clips(test, settings["sanity_clips"])
    return rows, sanity_check(run.explainer, clips, settings["sanity_seed"])


def load_settings(argv: list[str], required: list[str]) -> tuple[str, dict, dict]:
    """Command line -> (yaml path, loaded yaml, run options), for verbs that drive others."""
    hparams_file, run_opts, overrides = parse(argv)
    return hparams_file, load_hparams(hparams_file, overrides, required), run_opts


def sanity_table(sanity: dict[str, dict], threshold: float) -> tuple[str, dict]:
    """Markdown of Spearman/SSIM per randomisation step; a method passes when the fully
    randomised model's explanation has Spearman below ``threshold``."""
    rows, verdicts, random_spearman = {}, {}, {}
    for method, steps in sanity.items():
        for measure in ("spearman", "ssim", "spearman (own mask)"):
            if measure in next(iter(steps.values())):
                rows[f"{method} · {measure}"] = {step: v[measure] for step, v in steps.items()}
        random_spearman[method] = list(steps.values())[-1]["spearman"]
        verdicts[method] = "passes" if random_spearman[method] < threshold else "FAILS"
    columns = list(next(iter(sanity.values()))) if sanity else []
    table = metrics.format_table(rows, columns, name_header="method · similarity")
    lines = [
        f"- {m}: {v} (Spearman with every layer random: {random_spearman[m]:.2f}; "
        f"passing needs < {threshold})"
        for m, v in verdicts.items()
    ]
    return table + "\n\n" + "\n".join(lines), verdicts


def labelled(rows: dict, label: str | None) -> dict:
    """A method's rows named by its entry in the method list (two entries of one explainer,
    e.g. LMAC-TD conditioned and not, then keep apart), the oracle's rows as they are; no rows
    (a benchmark without metrics) stay none."""
    methods = [name for name in rows if not name.startswith(ORACLE)]
    if label is None or not methods:
        return rows
    method = methods[0].split(" · ")[0]
    return {
        name if name.startswith(ORACLE) else label + name[len(method) :]: row
        for name, row in rows.items()
    }


def compare(argv: list[str]) -> Path:
    """Run every listed method; write comparison.md and comparison.json; path of the md."""
    hparams_file, settings, run_opts = load_settings(argv, COMPARISON_KEYS)
    device = run_opts.get("device") or "cpu"
    table, sanity, skipped, oracle = {}, {}, {}, {}
    for label, argv_method in method_entries(settings, device, hparams_file):
        if not Path(argv_method[0]).is_file():
            skipped[label or argv_method[0]] = "yaml not present"
            continue
        try:
            rows, steps = evaluate_method(argv_method, settings)
        except InterpreterError as err:  # e.g. a method whose own prerequisites are missing
            skipped[label or argv_method[0]] = str(err)
            continue
        rows = labelled(rows, label)
        label = next(iter(rows)).split(" · ")[0]
        oracle.update({k: v for k, v in rows.items() if k.startswith(ORACLE)})
        table.update({k: v for k, v in rows.items() if not k.startswith(ORACLE)})
        sanity[label] = steps
    table.update(oracle)
    return write_comparison(settings, table, sanity, skipped)


def write_comparison(settings: dict, table: dict, sanity: dict, skipped: dict) -> Path:
    """comparison.json (everything) and comparison.md (metrics, sanity check, skipped)."""
    folder = Path(settings["output_folder"])
    folder.mkdir(parents=True, exist_ok=True)
    columns = FAITHFULNESS_COLUMNS + GROUND_TRUTH_COLUMNS + ["s/clip"] + OVERLAP_COLUMNS
    present = [c for c in columns if any(c in row for row in table.values())]
    sanity_md, verdicts = sanity_table(sanity, settings["sanity_threshold"])
    parts = [
        "## Metrics",
        METRICS_NOTE,
        metrics.format_table(table, present),
        "## Model-randomisation sanity check (layers re-initialised from the top, cascading)",
        sanity_md,
    ]
    if skipped:
        parts += ["## Skipped", "\n".join(f"- {k}: {v}" for k, v in skipped.items())]
    md_path = folder / "comparison.md"
    md_path.write_text("\n\n".join(parts) + "\n")
    record = {"metrics": table, "sanity": sanity, "verdicts": verdicts, "skipped": skipped}
    (folder / "comparison.json").write_text(json.dumps(record, indent=2) + "\n")
    return md_path
