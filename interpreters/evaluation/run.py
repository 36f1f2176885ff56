"""The evaluate verb, and loading any method's explainer for a run: the yaml's explainer, with
the trained parts of a trained method restored from its best checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from interpreters.checkpoints import trainable_parts
from interpreters.config import check_hparams
from interpreters.errors import InterpreterError
from interpreters.evaluation.evaluator import Evaluator
from interpreters.experiment import RUN_KEYS, Experiment, setup
from interpreters.explainers.base import Explainer
from interpreters.training.recipe import build_brain

METHOD_KEYS = RUN_KEYS + ["explainer", "eval_sets", "n_examples", "test_dataloader_opts"]


@dataclass
class MethodRun:
    """One method set up on its data: its explainer, and the Brain of a trained method."""

    experiment: Experiment
    explainer: Explainer
    brain: object | None = None

    @property
    def hparams(self) -> dict:
        """The method's loaded yaml."""
        return self.experiment.hparams

    def evaluator(self) -> Evaluator:
        """The Evaluator writing this run's metrics and examples (with the training loss of a
        trained method as ``loss``)."""
        folder, n_examples = self.hparams["output_folder"], self.hparams["n_examples"]
        if self.brain is None:
            return Evaluator(folder, n_examples)
        return self.brain.make_evaluator(folder, n_examples)

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Every metric on every set in ``eval_sets``; metrics.json and metrics.md written."""
        hp = self.hparams
        return self.evaluator().run(
            self.explainer, self.experiment.datasets, hp["eval_sets"], hp["test_dataloader_opts"]
        )


def load_method(argv: list[str]) -> MethodRun:
    """Set up a method's run; a trained method without a checkpoint is a one-line error."""
    return method_from(setup(argv, METHOD_KEYS))


def method_from(experiment: Experiment) -> MethodRun:
    """The explainer of a set-up run, with its trained parts from the best checkpoint."""
    hparams = experiment.hparams
    check_hparams(hparams, METHOD_KEYS, experiment.hparams_file)
    if not trainable_parts(hparams):
        device = experiment.run_opts.get("device") or "cpu"
        return MethodRun(experiment, hparams["explainer"].to(device).eval())
    brain = build_brain(experiment)
    if brain.checkpointer.recover_if_possible(min_key="loss") is None:
        raise InterpreterError(
            f"no trained checkpoint in {brain.checkpointer.checkpoints_dir}; "
            "train it first with recipes/train.py and the same yaml"
        )
    return MethodRun(experiment, brain.explainer.eval(), brain)


def evaluate(argv: list[str]) -> Path:
    """Evaluate a run without training further: an explainer (its best checkpoint, if trained)
    on its eval_sets, or a classifier / dictionary recipe's own test; path of the table."""
    if is_comparison(argv):
        from interpreters.evaluation.comparison import compare

        return compare(argv)
    experiment = setup(argv, RUN_KEYS)
    if "explainer" not in experiment.hparams:
        brain = build_brain(experiment)
        brain.checkpointer.recover_if_possible()
        return brain.run_evaluation(experiment.datasets, experiment.hparams["test_dataloader_opts"])
    run = method_from(experiment)
    run.evaluate()
    return Path(run.hparams["output_folder"]) / "metrics.md"


def is_comparison(argv: list[str]) -> bool:
    """Whether the yaml given is a comparison (it has a ``method_list``, and no explainer)."""
    import ruamel.yaml

    path = Path(argv[0]) if argv else None
    if path is None or not path.is_file():
        return False
    tree = ruamel.yaml.YAML().load(path.read_text()) or {}
    return "method_list" in tree and "explainer" not in tree
