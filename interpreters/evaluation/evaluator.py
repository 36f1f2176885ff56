"""Evaluator: scores any explainer on any set, the same way for every method.

Faithfulness is computed on what a listener hears (the interpretation and residual waveforms fed
back to the classifier); on mixtures with known stems, ground truth against the stem of the
class the classifier picked, with the oracle mask of that stem as the ceiling. Train, evaluate,
the comparison, the benchmark and the sanity check all score through here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.distributed import if_main_process

from interpreters.audio import Spectrum
from interpreters.evaluation import metrics
from interpreters.evaluation.tables import write_metrics
from interpreters.explainers.base import Explainer, Explanation, classify_halves
from interpreters.listening import save_explanation_figure, write_sounds

FAITHFULNESS_COLUMNS = ["AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "MM"]
GROUND_TRUTH_COLUMNS = ["SI-SDR", "SI-SDRi", "precision", "recall", "in-mix"]
OVERLAP_COLUMNS = ["TF-overlap", "time-overlap"]  # of the set's stems, on the oracle rows
ORACLE = "oracle mask"
# AI and AG count a rise of the explained class' probability only above this: the STFT round
# trip alone moves probabilities by up to ~4e-7, which must not read as an increase.
INCREASE_TOLERANCE = 1e-3
METRICS_NOTE = (
    f"AI and AG count a rise of the decision's probability only above {INCREASE_TOLERANCE:g}. "
    "precision/recall: share of the kept (resp. of the picked stem's dominated) energy, bins "
    "weighted by the linear gain the mask applies (M-precision/M-recall in the json: by mask "
    "value). TF-overlap: % of mixture energy in bins where the two stems are within 10 dB; "
    "time-overlap: % of mixtures whose stems sound together; s/clip: explanation time per test "
    "clip."
)


def faithfulness_scores(
    explanation: Explanation, in_logits: torch.Tensor, out_logits: torch.Tensor
) -> dict[str, torch.Tensor]:
    """AI, AD, AG, FF, Fid-In of an explanation from the classifier's view of both halves."""
    return metrics.faithfulness(
        explanation.probabilities,
        in_logits.softmax(-1),
        out_logits.softmax(-1),
        explanation.target,
        INCREASE_TOLERANCE,
    )


def picked_stems(batch, target: torch.Tensor, device) -> tuple[torch.Tensor, ...]:
    """Per mixture: the stem of the explained class, the other stem, and whether the explained
    class is one of the two sources at all."""
    stems = torch.stack([batch.stem1_sig.data, batch.stem2_sig.data], dim=1).to(device)
    hit = batch.stem_labels.data.to(device) == target[:, None]
    which = hit.float().argmax(dim=1)
    rows = torch.arange(len(which), device=device)
    return stems[rows, which], stems[rows, 1 - which], hit.any(dim=1)


def only_where(keep: torch.Tensor, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-example values with NaN where ``keep`` is False (the accumulator leaves NaN out)."""
    return {k: torch.where(keep, v, torch.nan) for k, v in values.items()}


class Evaluator:
    """Scores explainers on data sets and writes what a person reads, hears and sees.

    ``objective``: optional training loss of the explainer (reported as ``loss``).
    ``mask_objective``: a training loss that reads only mask, logits, target and spectrum; on sets
    with stems it is scored for the method and for the oracle mask on the mixtures that hold the
    decision (``loss-in-mix``): does the objective prefer the true source's mask to the learnt one?
    ``n_examples``: how many items per set get their wavs and picture written.
    """

    def __init__(
        self,
        output_folder: str | Path,
        n_examples: int = 0,
        objective: Callable[..., torch.Tensor] | None = None,
        mask_objective: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        self.output_folder = Path(output_folder)
        self.n_examples = n_examples
        self.objective = objective
        self.mask_objective = mask_objective

    # ---- one batch ------------------------------------------------------------------------

    def score(
        self,
        explainer: Explainer,
        explanation: Explanation,
        batch=None,
        heard: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """Per-example values of the explanation, and of the oracle mask when the batch has
        stems (else None). ``heard``: the classifier's logits on both halves, if computed."""
        in_logits, out_logits = heard or classify_halves(explainer.classifier, explanation)
        values = {
            **faithfulness_scores(explanation, in_logits, out_logits),
            **metrics.mask_statistics(explanation.mask),
            **explainer.method_metrics(explanation),
        }
        if batch is None or not hasattr(batch, "stem_labels"):
            return values, None
        truth, oracle = self.ground_truth(explainer, explanation, batch, (in_logits, out_logits))
        return {**values, **truth}, oracle

    def ground_truth(
        self, explainer: Explainer, explanation: Explanation, batch, heard=None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Ground truth against the picked stem, for the explanation and for the oracle mask.

        Items whose decision is neither source of the mixture get NaN (counted, not averaged).
        """
        front_end, device = explainer.front_end, explainer.device
        mixture, lens = batch.sig.data.to(device), batch.sig.lengths.to(device)
        target_stem, other_stem, found = picked_stems(batch, explanation.target, device)
        mixture_spec = front_end.stft(mixture)
        magnitudes = {
            "mix": mixture_spec.abs(),
            "target": front_end.stft(target_stem).abs(),
            "other": front_end.stft(other_stem).abs(),
        }
        mask = explainer.time_frequency_mask(explanation, mixture)
        values = stem_scores(
            front_end, explanation.interpretation, mask, mixture, target_stem, magnitudes, lens
        )
        oracle = self.oracle_scores(
            explainer, explanation, mixture_spec, mixture, target_stem, magnitudes, lens, found
        )
        truth = {**only_where(found, values), "in-mix": 100.0 * found.float()}
        if self.mask_objective is not None:
            heard = heard or classify_halves(explainer.classifier, explanation)
            truth["loss-in-mix"] = self.objective_where(explanation, heard, found)
        return truth, only_where(found, oracle)

    def oracle_scores(
        self, explainer, explanation, mixture_spec, mixture, target_stem, magnitudes, lens, found
    ) -> dict[str, torch.Tensor]:
        """Every metric of the ideal mask of the picked stem: the best any mask can do; with an
        objective, its training loss on the mixtures that hold the decision (``found``)."""
        front_end = explainer.front_end
        spectrum = front_end.spectrum(mixture_spec, mixture.shape[-1])
        mask = front_end.ratio_mask(magnitudes["mix"], magnitudes["target"])
        interpretation, residual = front_end.listenable(spectrum, mask)
        oracle = Explanation(
            mask, interpretation, residual, explanation.logits, explanation.target, {}, spectrum
        )
        heard = classify_halves(explainer.classifier, oracle)
        scores = {
            **faithfulness_scores(oracle, *heard),
            **metrics.mask_statistics(mask),
            **stem_scores(front_end, interpretation, mask, mixture, target_stem, magnitudes, lens),
            **metrics.stem_overlap(magnitudes["target"], magnitudes["other"], magnitudes["mix"]),
        }
        if self.mask_objective is not None:
            scores["loss-in-mix"] = self.objective_where(oracle, heard, found)
        return scores

    def objective_where(
        self, explanation: Explanation, heard: tuple[torch.Tensor, torch.Tensor], keep
    ) -> torch.Tensor:
        """The training objective (a batch mean) of the rows ``keep`` selects, one value per
        row: does the objective prefer this mask to the method's own?"""
        if not bool(keep.any()):
            return torch.full(keep.shape, torch.nan, device=keep.device)
        spectrum = explanation.spectrum
        if spectrum is not None:
            spectrum = Spectrum(spectrum.compressed[keep], spectrum.phase[keep], spectrum.length)
        rows = Explanation(
            explanation.mask[keep],
            explanation.interpretation[keep],
            explanation.residual[keep],
            explanation.logits[keep],
            explanation.target[keep],
            {},
            spectrum,
        )
        loss = self.mask_objective(rows, *(logits[keep] for logits in heard))
        return torch.full(keep.shape, float(loss), device=keep.device)

    # ---- a whole set -------------------------------------------------------------------------

    def evaluate(
        self, explainer: Explainer, dataset, set_name: str, loader_kwargs: dict
    ) -> dict[str, dict[str, float]]:
        """Mean of every metric over ``dataset``: {"<method> · <set>": row, and the oracle's
        row on sets with stems}; the first ``n_examples`` items are written as examples."""
        accumulators = {"method": metrics.MetricAccumulator(), "oracle": None}
        saved, losses = 0, []
        loader = make_dataloader(dataset, **{**loader_kwargs, "shuffle": False})
        for batch in loader:
            wavs, lens = batch.sig.data, batch.sig.lengths.to(explainer.device)
            with torch.no_grad():
                explanation = explainer.explain_for_evaluation(wavs, lens)
                heard = classify_halves(explainer.classifier, explanation)
                values, oracle = self.score(explainer, explanation, batch, heard)
                if self.objective is not None:  # a batch mean, as SpeechBrain's stage loss
                    losses.append(float(self.objective(explanation, *heard)))
            accumulators["method"].update(values)
            if oracle is not None:
                accumulators["oracle"] = accumulators["oracle"] or metrics.MetricAccumulator()
                accumulators["oracle"].update(oracle)
                if explainer.conditioned:
                    other = accumulators.setdefault("other", metrics.MetricAccumulator())
                    other.update(self.other_source(explainer, explanation, batch))
            saved += self.write_examples(explainer, explanation, batch, set_name, saved)
        row = accumulators["method"].summary()
        if losses:
            row["loss"] = sum(losses) / len(losses)
        rows = {f"{explainer.name} · {set_name}": row}
        if "other" in accumulators:
            rows[f"{explainer.name} · {set_name} · other source"] = accumulators["other"].summary()
        if accumulators["oracle"] is not None:
            rows[f"{ORACLE} · {set_name}"] = accumulators["oracle"].summary()
        return rows

    def other_source(
        self, explainer: Explainer, explanation: Explanation, batch
    ) -> dict[str, torch.Tensor]:
        """Every metric of the explanation of the mixture's other source (the one the
        classifier did not decide), against its own stem: a class-conditioned explainer should
        hand it over as well as the decided one. Mixtures whose decision is neither source are
        left out (NaN)."""
        labels = batch.stem_labels.data.to(explainer.device)
        decided = labels == explanation.target[:, None]
        usable = decided.sum(dim=1) == 1
        other = labels.gather(1, decided[:, :1].long()).squeeze(1)  # the stem not decided
        other = torch.where(usable, other, explanation.target)
        with torch.no_grad():
            wavs, lens = batch.sig.data, batch.sig.lengths.to(explainer.device)
            other_explanation = explainer.explain(wavs, lens, target=other)
            values, _ = self.score(explainer, other_explanation, batch)
        return only_where(usable, values)

    def run(
        self, explainer: Explainer, datasets: dict, sets: list[str], loader_kwargs: dict
    ) -> dict[str, dict[str, float]]:
        """Evaluate on every named set; write metrics.json and metrics.md; the rows."""
        explainer.eval()
        results = {}
        for name in sets:
            results.update(self.evaluate(explainer, datasets[name], name, loader_kwargs))
        columns = FAITHFULNESS_COLUMNS + GROUND_TRUTH_COLUMNS + list(explainer.method_columns)
        columns += OVERLAP_COLUMNS
        if if_main_process():
            write_metrics(self.output_folder, results, columns, METRICS_NOTE)
        return results

    # ---- what a person listens to -------------------------------------------------------------

    def write_examples(
        self, explainer: Explainer, explanation: Explanation, batch, set_name: str, saved: int
    ) -> int:
        """Input / interpretation / residual wavs (and the method's extra sounds) and a picture
        for the first examples of a set; how many were written."""
        count = min(self.n_examples - saved, len(batch.id))
        if count <= 0 or not if_main_process():
            return 0
        folder = self.output_folder / "examples" / set_name
        wavs = batch.sig.data.to(explainer.device)
        spectrum = explanation.spectrum or explainer.front_end.analyse(wavs)
        compressed = spectrum.compressed
        mask = explainer.time_frequency_mask(explanation, wavs)
        rate, hop = explainer.sample_rate, explainer.front_end.hop_length
        extras = explainer.extra_sounds(explanation, count)
        for i, uid in enumerate(batch.id[:count]):
            label = explainer.labels[int(explanation.target[i])]
            name = f"{uid}_{label}"
            sounds = {
                "input": wavs[i],
                "interpretation": explanation.interpretation[i],
                "residual": explanation.residual[i],
                **extras[i],
            }
            paths = {kind: folder / "wav" / f"{name}_{kind}.wav" for kind in sounds}
            write_sounds(paths, sounds, rate)
            probability = float(explanation.probabilities[i, explanation.target[i]])
            save_explanation_figure(
                folder / "png" / f"{name}.png",
                compressed[i],
                mask[i],
                title=f"{uid}: explaining '{label}' (p={probability:.2f})",
                frame_rate=rate / hop,
                max_freq=rate / 2,
            )
        return count


def stem_scores(front_end, interpretation, mask, mixture, target_stem, magnitudes, lens):
    """SI-SDR(i) of an interpretation and its mask's energy precision/recall against the
    target-dominated bins (``magnitudes``: |STFT| of "mix", "target" and "other"): weighted by
    the linear gain the mask applies ("precision", "recall": what is heard) and by the mask
    value itself ("M-precision", "M-recall", as the papers and earlier tables)."""
    mix, target, other = magnitudes["mix"], magnitudes["target"], magnitudes["other"]
    gain = front_end.applied_gain(mask, mix)
    precision, recall = metrics.mask_energy_precision_recall(gain, mix, target, other)
    by_mask = metrics.mask_energy_precision_recall(mask, mix, target, other)
    scores = metrics.ground_truth(interpretation, mixture, target_stem, lens)
    return {
        **scores,
        "precision": 100 * precision,
        "recall": 100 * recall,
        "M-precision": 100 * by_mask[0],
        "M-recall": 100 * by_mask[1],
    }
