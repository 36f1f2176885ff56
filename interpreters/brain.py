"""InterpreterBrain: a frozen classifier, one front end, and the evaluation every method shares.

A method subclass supplies only what differs: how it turns the classifier's hidden
representations into a mask (``interpret``) and its training loss (``interpreter_loss``).
Everything a user hears, sees or reads as a number is produced here, the same way for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import if_main_process

from interpreters import metrics
from interpreters.audio import Spectrum, save_audio
from interpreters.errors import InterpreterError
from interpreters.report import save_explanation_figure, write_metrics

FAITHFULNESS_COLUMNS = ["AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "MM"]
GROUND_TRUTH_COLUMNS = ["SI-SDR", "SI-SDRi", "precision", "recall", "in-mix"]


@dataclass
class Explanation:
    """What every method returns: mask, listenable interpretation and residual, the decision."""

    mask: torch.Tensor  # [B, T, F] in [0, 1], time-frequency
    interpretation: torch.Tensor  # [B, N] waveform of what the mask keeps
    residual: torch.Tensor  # [B, N] waveform of what it removes
    logits: torch.Tensor  # [B, C] classifier on the input
    target: torch.Tensor  # [B] class explained
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # method-specific outputs

    @property
    def probabilities(self) -> torch.Tensor:
        """Classifier's softmax on the input."""
        return self.logits.softmax(dim=-1)


def check_hparams(hparams: dict, required: list[str], where: str) -> None:
    """One-line error for a missing yaml key, with the closest existing keys as a hint."""
    import difflib

    for key in required:
        if key not in hparams:
            close = difflib.get_close_matches(key, list(hparams), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InterpreterError(f"{where}: yaml key '{key}' is missing{hint}; add it")


def resolve_target(target, logits: torch.Tensor, labels: list[str]) -> torch.Tensor:
    """Class indices [B] to explain: the decision when None, else names or indices given."""
    batch = logits.shape[0]
    if target is None:
        return logits.argmax(dim=-1)
    if isinstance(target, torch.Tensor):
        return target.to(logits.device).long().expand(batch)
    names = [target] if isinstance(target, (str, int)) else list(target)
    indices = []
    for name in names:
        if isinstance(name, int):
            if not 0 <= name < len(labels):
                raise InterpreterError(f"target class {name} is out of range 0..{len(labels) - 1}")
            indices.append(name)
        elif name in labels:
            indices.append(labels.index(name))
        else:
            raise InterpreterError(f"unknown class '{name}'; the classifier knows {labels}")
    return torch.tensor(indices, device=logits.device).expand(batch)


class Brain(sb.core.Brain):
    """SpeechBrain's Brain, with DDP that also runs on CPU (gloo).

    SpeechBrain converts every BatchNorm to SyncBatchNorm under DDP, which only works on GPU; on
    CPU we wrap in DDP without that conversion (each process keeps its own running statistics;
    rank 0's are the ones checkpointed).
    """

    checkpoint_keys: dict[str, list[str]] = {"min_keys": ["loss"]}  # selects the best checkpoint
    eval_set = "test"  # name of the set being evaluated, for logs and result rows

    def stage_stats(self, stage, stage_loss: float) -> dict[str, float]:
        """Statistics of a finished validation or test pass; subclasses add theirs."""
        return {"loss": stage_loss}

    def on_stage_end(self, stage, stage_loss, epoch=None) -> None:
        """Log; keep the best checkpoint after validation; keep ``test_stats`` after a test."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        stats = self.stage_stats(stage, stage_loss)
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch},
                train_stats={"loss": self.train_loss},
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(meta=stats, **self.checkpoint_keys)
            return
        self.test_stats = stats
        self.hparams.train_logger.log_stats(stats_meta={"set": self.eval_set}, test_stats=stats)

    def _wrap_distributed(self) -> None:
        if not (self.distributed_launch and str(self.device).startswith("cpu")):
            return super()._wrap_distributed()
        from torch.nn.parallel import DistributedDataParallel

        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DistributedDataParallel(
                    module, find_unused_parameters=self.find_unused_parameters
                )


class InterpreterBrain(Brain):
    """Brain for trained interpreters; evaluation writes metrics, audio and pictures."""

    required_hparams = ["classifier", "front_end", "output_folder", "method_name", "n_examples"]
    trainable = True  # False for attribution baselines: nothing to train or checkpoint
    method_columns: list[str] = []  # method_metrics keys also shown in metrics.md

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_hparams(vars(self.hparams), self.required_hparams, type(self).__name__)
        self.classifier = self.hparams.classifier.to(self.device).eval()
        self.front_end = self.hparams.front_end.to(self.device)
        self.results: dict[str, dict[str, float]] = {}
        self.accumulators: dict[str, metrics.MetricAccumulator] = {}

    # ---- the contract -------------------------------------------------------------------

    def explain(self, wavs: torch.Tensor, lens: torch.Tensor | None = None, target=None):
        """Explain the classifier's decision (or ``target``) on a batch of waveforms."""
        wavs = wavs.to(self.device)
        with torch.no_grad():
            logits, hidden = self.classifier.forward_with_hidden(wavs)
        target = resolve_target(target, logits, self.classifier.labels)
        spectrum = self.front_end.analyse(wavs)
        mask, extras = self.interpret(spectrum, hidden, target)
        interpretation, residual = self.front_end.listenable(spectrum, mask)
        return Explanation(mask, interpretation, residual, logits, target, extras)

    def interpret(
        self, spectrum: Spectrum, hidden: list[torch.Tensor], target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Method-specific: a [B, T, F] mask in [0, 1] for ``target``, plus any extra outputs
        its loss or metrics need (kept in ``Explanation.extras``)."""
        raise NotImplementedError

    def method_metrics(self, explanation: Explanation) -> dict[str, torch.Tensor]:
        """Method-specific per-example metrics added to the shared ones (none by default)."""
        return {}

    def time_frequency_mask(self, explanation: Explanation, wavs: torch.Tensor) -> torch.Tensor:
        """The explanation's mask on this front end's grid; for masks over another domain
        (e.g. a learnt encoder), the mask that turns the input into the interpretation."""
        if explanation.mask.shape == (
            len(wavs),
            self.front_end.n_frames(wavs.shape[-1]),
            self.front_end.n_freqs,
        ):
            return explanation.mask
        return self.front_end.ideal_mask(wavs, explanation.interpretation)

    def interpreter_loss(
        self, explanation: Explanation, in_logits: torch.Tensor, out_logits: torch.Tensor
    ) -> torch.Tensor:
        """Method-specific training loss from the classifier's view of both halves."""
        raise NotImplementedError

    # ---- SpeechBrain stages ---------------------------------------------------------------

    def compute_forward(self, batch, stage):
        """Explain, then let the classifier hear the interpretation and the residual."""
        wavs, lens = batch.sig
        explanation = self.explain(wavs, lens)
        in_logits = self.classifier(explanation.interpretation)
        out_logits = self.classifier(explanation.residual)
        return explanation, in_logits, out_logits

    def compute_objectives(self, outputs, batch, stage):
        """Method loss; outside training also every metric, and examples at test time."""
        explanation, in_logits, out_logits = outputs
        loss = self.interpreter_loss(explanation, in_logits, out_logits)
        if stage != sb.Stage.TRAIN:
            self.record_metrics(batch, explanation, in_logits, out_logits)
        if stage == sb.Stage.TEST:
            self.save_examples(batch, explanation)
        return loss

    def on_stage_start(self, stage, epoch=None) -> None:
        """Fresh metric accumulators for each evaluation pass."""
        self.accumulators = {"method": metrics.MetricAccumulator()}
        self.n_saved = 0

    def stage_stats(self, stage, stage_loss: float) -> dict[str, float]:
        """Loss and the mean of every metric over the pass."""
        return {"loss": stage_loss, **self.accumulators["method"].summary()}

    def on_stage_end(self, stage, stage_loss, epoch=None) -> None:
        """As the base, and after a test pass the rows of the results table."""
        super().on_stage_end(stage, stage_loss, epoch)
        if stage != sb.Stage.TEST:
            return
        self.results[f"{self.hparams.method_name} · {self.eval_set}"] = self.test_stats
        if "oracle" in self.accumulators:
            oracle = self.accumulators["oracle"].summary()
            self.results[f"oracle mask · {self.eval_set}"] = oracle

    # ---- evaluation -------------------------------------------------------------------------

    def record_metrics(self, batch, explanation: Explanation, in_logits, out_logits) -> None:
        """Faithfulness and mask statistics; ground truth when the batch has stems."""
        values = {
            **metrics.faithfulness(
                explanation.probabilities,
                in_logits.softmax(-1),
                out_logits.softmax(-1),
                explanation.target,
            ),
            **metrics.mask_statistics(explanation.mask),
            **self.method_metrics(explanation),
        }
        if hasattr(batch, "stem_labels"):
            values.update(self.ground_truth(batch, explanation))
        self.accumulators["method"].update(values)

    def ground_truth(self, batch, explanation: Explanation) -> dict[str, torch.Tensor]:
        """Score against the stem of the class the classifier picked; also the oracle mask's score.

        Items whose decision is neither source of the mixture get NaN (counted, not averaged).
        """
        mixture, lens = batch.sig.data.to(self.device), batch.sig.lengths.to(self.device)
        stems = torch.stack([batch.stem1_sig.data, batch.stem2_sig.data], dim=1).to(self.device)
        hit = batch.stem_labels.data.to(self.device) == explanation.target[:, None]
        found = hit.any(dim=1)
        which = hit.float().argmax(dim=1)
        rows = torch.arange(len(which), device=self.device)
        target_stem, other_stem = stems[rows, which], stems[rows, 1 - which]
        mixture_spec = self.front_end.stft(mixture)
        magnitudes = {
            "mix": mixture_spec.abs(),
            "target": self.front_end.stft(target_stem).abs(),
            "other": self.front_end.stft(other_stem).abs(),
        }
        mask = self.time_frequency_mask(explanation, mixture)
        values = self.ground_truth_scores(
            explanation.interpretation, mask, mixture, target_stem, magnitudes, lens
        )
        oracle = self.oracle_scores(
            mixture_spec, mixture, target_stem, magnitudes, lens, explanation
        )
        self.accumulators.setdefault("oracle", metrics.MetricAccumulator()).update(
            only_where(found, oracle)
        )
        return {**only_where(found, values), "in-mix": 100.0 * found.float()}

    def ground_truth_scores(self, interpretation, mask, mixture, target_stem, magnitudes, lens):
        """SI-SDR(i) of an interpretation and its mask's energy precision/recall against the
        target stem (``magnitudes``: |STFT| of "mix", "target" and "other")."""
        precision, recall = metrics.mask_energy_precision_recall(
            mask, magnitudes["mix"], magnitudes["target"], magnitudes["other"]
        )
        scores = metrics.ground_truth(interpretation, mixture, target_stem, lens)
        return {**scores, "precision": 100 * precision, "recall": 100 * recall}

    def oracle_scores(self, mixture_spec, mixture, target_stem, magnitudes, lens, explanation):
        """Every metric of the ideal mask of the picked stem: the best any mask can do."""
        spectrum = self.front_end.spectrum(mixture_spec, mixture.shape[-1])
        mask = self.front_end.ratio_mask(magnitudes["mix"], magnitudes["target"])
        interpretation, residual = self.front_end.listenable(spectrum, mask)
        return {
            **metrics.faithfulness(
                explanation.probabilities,
                self.classifier(interpretation).softmax(-1),
                self.classifier(residual).softmax(-1),
                explanation.target,
            ),
            **metrics.mask_statistics(mask),
            **self.ground_truth_scores(
                interpretation, mask, mixture, target_stem, magnitudes, lens
            ),
        }

    def save_examples(self, batch, explanation: Explanation) -> None:
        """Write input / interpretation / residual wavs and a picture for the first examples."""
        if not if_main_process() or self.n_saved >= self.hparams.n_examples:
            return
        folder = Path(self.hparams.output_folder) / "examples" / self.eval_set
        wavs = batch.sig.data.to(self.device)
        spectrum = self.front_end.analyse(wavs)
        mask = self.time_frequency_mask(explanation, wavs)
        rate = self.classifier.sample_rate
        for i, uid in enumerate(batch.id[: self.hparams.n_examples - self.n_saved]):
            label = self.classifier.labels[int(explanation.target[i])]
            name = f"{uid}_{label}"
            sounds = {
                "input": wavs[i],
                "interpretation": explanation.interpretation[i],
                "residual": explanation.residual[i],
            }
            for kind, wav in sounds.items():
                save_audio(folder / "wav" / f"{name}_{kind}.wav", wav, rate)
            probability = float(explanation.probabilities[i, explanation.target[i]])
            save_explanation_figure(
                folder / "png" / f"{name}.png",
                spectrum.compressed[i],
                mask[i],
                title=f"{uid}: explaining '{label}' (p={probability:.2f})",
                frame_rate=rate / self.front_end.hop_length,
                max_freq=rate / 2,
            )
            self.n_saved += 1

    def run_evaluation(self, datasets: dict, loader_kwargs: dict) -> Path:
        """Evaluate the best checkpoint on every set in ``eval_sets``; write the metrics files."""
        if self.trainable and self.checkpointer.find_checkpoint(min_key="loss") is None:
            raise InterpreterError(
                f"no trained checkpoint in {self.checkpointer.checkpoints_dir}; "
                "train it first with recipes/train.py and the same yaml"
            )
        for name in self.hparams.eval_sets:
            self.eval_set = name
            self.evaluate(datasets[name], min_key="loss", test_loader_kwargs=dict(loader_kwargs))
        columns = FAITHFULNESS_COLUMNS + GROUND_TRUTH_COLUMNS + self.method_columns
        if if_main_process():
            write_metrics(self.hparams.output_folder, self.results, columns)
        return Path(self.hparams.output_folder) / "metrics.md"


def only_where(keep: torch.Tensor, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-example values with NaN where ``keep`` is False (the accumulator leaves NaN out)."""
    return {k: torch.where(keep, v, torch.nan) for k, v in values.items()}


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring time and frequency bins of a [B, T, F] mask."""
    return (mask.diff(dim=1).abs().mean() + mask.diff(dim=2).abs().mean()) / 2


def decision_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the classifier's view of a signal against the decision being explained."""
    return F.cross_entropy(logits, target)
