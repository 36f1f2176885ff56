"""The train verb: set up the run, build the yaml's Brain, fit (resuming), evaluate the best
checkpoint; and ``main``, which turns user-fixable problems into one line and status 2."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch.distributed
from speechbrain.utils.distributed import ddp_barrier, if_main_process

from interpreters.checkpoints import trainable_parts
from interpreters.config import pop_option
from interpreters.errors import InterpreterError
from interpreters.experiment import RUN_KEYS, Experiment, setup
from interpreters.training.finetune import initialise_from, write_report

logger = logging.getLogger(__name__)

TRAIN_KEYS = RUN_KEYS + [
    "brain_class",
    "modules",
    "opt_class",
    "checkpointer",
    "epoch_counter",
    "train_dataloader_opts",
    "test_dataloader_opts",
]


def build_brain(experiment: Experiment):
    """The yaml's Brain over its modules, optimizer and checkpointer."""
    hparams = experiment.hparams
    return hparams["brain_class"](
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=experiment.run_opts,
        checkpointer=hparams["checkpointer"],
    )


def train(argv: list[str]) -> Path:
    """Train (resuming from the last checkpoint), evaluate the best one; path of its table."""
    argv, init_from = pop_option(argv, "init_from")
    experiment = setup(argv, TRAIN_KEYS, training=True)
    hparams, datasets = experiment.hparams, experiment.datasets
    brain = build_brain(experiment)
    start_from_pretrained(hparams, brain, init_from or hparams.get("init_from"))
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["test_dataloader_opts"],
    )
    return brain.run_evaluation(datasets, hparams["test_dataloader_opts"])


def start_from_pretrained(hparams: dict, brain, source: str | None) -> None:
    """Fine-tuning: a fresh run started ``--init_from`` a pretrained interpreter (or classifier)
    loads what fits from it; a run that already has a checkpoint resumes from that instead."""
    if not source or brain.checkpointer.find_checkpoint() is not None:
        return
    savedir = Path(hparams["save_folder"]) / "init_from"
    kwargs = {"modules": trainable_parts(hparams), "source": source, "savedir": savedir}
    if if_main_process():  # fetches the files once; the other processes then read them
        write_report(initialise_from(**kwargs), source, hparams["output_folder"])
    ddp_barrier()
    if not if_main_process():
        initialise_from(**kwargs)


def main(step, argv: list[str]) -> int:
    """Run a recipe step; user-fixable problems print one line and exit with status 2."""
    try:
        table = step(argv)
    except InterpreterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if if_main_process():
        print(Path(table).read_text())
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        leave_distributed_run()
    return 0


def leave_distributed_run() -> None:
    """End a torchrun process once every rank is done, skipping Python's finalisation: with a
    gloo group alive, C++ destructors at exit intermittently abort a rank under load
    ("terminate called without an active exception") after all its work was written."""
    ddp_barrier()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
