"""What train.py and evaluate.py share: yaml loading with clear errors, data prep, the Brain."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import speechbrain as sb
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import ddp_barrier, if_main_process, run_on_main

from interpreters.brain import check_hparams
from interpreters.data.dataio import build_datasets
from interpreters.errors import InterpreterError
from interpreters.finetune import initialise_from, write_report

logger = logging.getLogger(__name__)

SOURCE_YAML = "hyperparams_source.yaml"  # the recipe yaml as written, refs unresolved
OVERRIDES_YAML = "overrides.yaml"  # the command-line overrides of the run

RECIPE_KEYS = [
    "output_folder",
    "dataset",
    "data_folder",
    "prepared_folder",
    "prepare_data",
    "manifests",
    "labels",
    "sample_rate",
    "brain_class",
    "modules",
    "opt_class",
    "checkpointer",
    "epoch_counter",
    "train_dataloader_opts",
    "test_dataloader_opts",
]


def load_hparams(
    hparams_file: str, overrides: str | dict | None, required: list[str] = RECIPE_KEYS
) -> dict:
    """Load a recipe yaml; a missing file or an override naming no yaml key is one line."""
    path = Path(hparams_file)
    if not path.is_file():
        raise InterpreterError(f"hparams file {path} does not exist; pick one from hparams/")
    with open(path) as stream:
        try:
            hparams = load_hyperpyyaml(stream, overrides)
        except KeyError as err:
            message = str(err).strip("'\"")
            if message.startswith("Override"):
                raise InterpreterError(
                    f"{path}: {message.split(' not found')[0]} is not a key of this yaml; "
                    "check its spelling against the file"
                ) from None
            raise
    check_hparams(hparams, required, str(path))
    return hparams


def load_settings(argv: list[str], required: list[str]) -> tuple[str, dict, dict]:
    """Command line -> (yaml path, loaded yaml, run options), for recipes that drive others."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    return hparams_file, load_hparams(hparams_file, overrides, required), run_opts


def save_recipe_source(hparams_file: str, overrides: str | dict, output_folder: str) -> None:
    """Keep the unresolved yaml and the command-line overrides: export rebuilds from them."""
    folder = Path(output_folder)
    (folder / SOURCE_YAML).write_text(Path(hparams_file).read_text())
    if isinstance(overrides, str):
        overrides = yaml.safe_load(overrides) if overrides.strip() else {}
    (folder / OVERRIDES_YAML).write_text(yaml.safe_dump(overrides or {}, sort_keys=True))


def prepare(argv: list[str]):
    """Parse arguments, load the yaml, prepare data on the main process, build the Brain."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)  # no-op unless started by torchrun
    hparams = load_hparams(hparams_file, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    if if_main_process():
        save_recipe_source(hparams_file, overrides, hparams["output_folder"])
    run_on_main(hparams["prepare_data"])
    datasets = build_datasets(
        hparams["manifests"], hparams["prepared_folder"], hparams["labels"], hparams["sample_rate"]
    )
    brain = hparams["brain_class"](
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    return hparams, datasets, brain


def train(argv: list[str]) -> Path:
    """Train (resuming from the last checkpoint), evaluate the best one; path of its table."""
    argv, init_from = pop_option(argv, "init_from")
    hparams, datasets, brain = prepare(argv)
    start_from_pretrained(hparams, brain, init_from or hparams.get("init_from"))
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["test_dataloader_opts"],
    )
    return brain.run_evaluation(datasets, hparams["test_dataloader_opts"])


def pop_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Take ``--name=value`` (or ``--name value``) out of the command line: an option of the
    run itself rather than a yaml key, so it works with any recipe yaml."""
    rest, value, args = [], None, iter(argv)
    for arg in args:
        if arg == f"--{name}":
            value = next(args, None)
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, value


def start_from_pretrained(hparams: dict, brain, source: str | None) -> None:
    """Fine-tuning: a fresh run started ``--init_from`` a pretrained interpreter (or classifier)
    loads what fits from it; a run that already has a checkpoint resumes from that instead."""
    if not source or brain.checkpointer.find_checkpoint() is not None:
        return
    savedir = Path(hparams["save_folder"]) / "init_from"
    kwargs = {"modules": hparams["modules"], "source": source, "savedir": savedir}
    if if_main_process():  # fetches the files once; the other processes then read them
        write_report(initialise_from(**kwargs), source, hparams["output_folder"])
    ddp_barrier()
    if not if_main_process():
        initialise_from(**kwargs)


def evaluate(argv: list[str]) -> Path:
    """Evaluate the best checkpoint of a trained run without training further; its table."""
    hparams, datasets, brain = prepare(argv)
    brain.checkpointer.recover_if_possible()
    return brain.run_evaluation(datasets, hparams["test_dataloader_opts"])


def main(step, argv: list[str]) -> int:
    """Run a recipe step; user-fixable problems print one line and exit with status 2."""
    try:
        table = step(argv)
    except InterpreterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if if_main_process():
        print(table.read_text())
    return 0
