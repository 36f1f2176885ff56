"""The training side of the collection: SpeechBrain Brains that train explainers.

``InterpreterBrain`` holds an explainer (hparams ``explainer``) and trains its modules (hparams
``modules``, checkpointed by the yaml's checkpointer); a method's subclass supplies only its loss
(``loss``) and, where it trains differently, its stage hooks. Scoring is the Evaluator's.
"""

from __future__ import annotations

from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F

from interpreters.config import check_hparams
from interpreters.errors import InterpreterError
from interpreters.evaluation import metrics
from interpreters.evaluation.evaluator import Evaluator
from interpreters.explainers.base import Explanation, classify_halves


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
    """Trains the explainer's modules; validation logs the loss and the shared metrics."""

    required_hparams = ["explainer", "output_folder", "n_examples", "eval_sets"]
    mask_only_loss = False  # True where the loss reads only mask, logits, target and spectrum

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_hparams(vars(self.hparams), self.required_hparams, type(self).__name__)
        self.explainer = self.hparams.explainer.to(self.device)
        self.evaluator = self.make_evaluator(self.hparams.output_folder)
        self.accumulator = metrics.MetricAccumulator()

    @property
    def classifier(self):
        """The frozen classifier being explained."""
        return self.explainer.classifier

    def _wrap_distributed(self) -> None:
        """Wrap the trainable modules, then let the explainer call them through the wrappers
        (so gradients are synchronised) while the checkpointer keeps the plain modules."""
        super()._wrap_distributed()
        for name, module in self.modules.items():
            if isinstance(getattr(self.explainer, name, None), torch.nn.Module):
                setattr(self.explainer, name, module)

    def loss(
        self, explanation: Explanation, in_logits: torch.Tensor, out_logits: torch.Tensor
    ) -> torch.Tensor:
        """Method-specific training loss from the classifier's view of both halves."""
        raise NotImplementedError

    def compute_forward(self, batch, stage):
        """Explain, then let the classifier hear the interpretation and the residual."""
        wavs, lens = batch.sig
        explanation = self.explainer.explain(wavs.to(self.device), lens.to(self.device))
        return explanation, classify_halves(self.classifier, explanation)

    def compute_objectives(self, outputs, batch, stage):
        """The method's loss; outside training also every shared metric."""
        explanation, heard = outputs
        loss = self.loss(explanation, *heard)
        if stage != sb.Stage.TRAIN:
            values, _ = self.evaluator.score(self.explainer, explanation, heard=heard)
            self.accumulator.update(values)
        return loss

    def on_stage_start(self, stage, epoch=None) -> None:
        """A fresh metric accumulator for each pass; the explainer in the stage's mode."""
        self.accumulator = metrics.MetricAccumulator()
        self.explainer.train(stage == sb.Stage.TRAIN)

    def stage_stats(self, stage, stage_loss: float) -> dict[str, float]:
        """Loss and the mean of every metric over the pass."""
        return {"loss": stage_loss, **self.accumulator.summary()}

    def make_evaluator(self, output_folder, n_examples: int = 0) -> Evaluator:
        """An Evaluator reporting this Brain's loss, and where the loss reads the mask alone, the
        loss of the oracle mask beside the method's (``loss-in-mix``)."""
        mask_objective = self.loss if self.mask_only_loss else None
        return Evaluator(output_folder, n_examples, self.loss, mask_objective)

    def run_evaluation(self, datasets: dict, loader_kwargs: dict) -> Path:
        """Score the best checkpoint on every set in ``eval_sets``; write the metrics files."""
        if self.checkpointer.recover_if_possible(min_key="loss") is None:
            raise InterpreterError(
                f"no trained checkpoint in {self.checkpointer.checkpoints_dir}; "
                "train it first with recipes/train.py and the same yaml"
            )
        evaluator = self.make_evaluator(self.hparams.output_folder, self.hparams.n_examples)
        evaluator.run(self.explainer, datasets, self.hparams.eval_sets, loader_kwargs)
        return Path(self.hparams.output_folder) / "metrics.md"


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring time and frequency bins of a [B, T, F] mask."""
    return (mask.diff(dim=1).abs().mean() + mask.diff(dim=2).abs().mean()) / 2


def decision_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the classifier's view of a signal against the decision being explained."""
    return F.cross_entropy(logits, target)
