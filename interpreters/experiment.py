"""What every recipe verb does first: command line -> yaml -> run folder -> data -> datasets.

train, evaluate, the comparison and the benchmark all start here, so a run is set up the same
way whatever it does next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import speechbrain as sb
import yaml
from speechbrain.utils.distributed import if_main_process, run_on_main

from interpreters.config import (
    check_hparams,
    copy_with_includes,
    load_yaml,
    parse_overrides,
    resolved_yaml,
)
from interpreters.data.dataio import build_datasets
from interpreters.models.base import check_sample_rate

logger = logging.getLogger(__name__)

SOURCE_YAML = "hyperparams_source.yaml"  # the recipe yaml as written, refs unresolved
OVERRIDES_YAML = "overrides.yaml"  # the command-line overrides of the run
RUN_KEYS = ["output_folder", "data", "labels"]


@dataclass
class Experiment:
    """A recipe yaml loaded for a run, with its data prepared."""

    hparams_file: str
    hparams: dict
    overrides: dict
    run_opts: dict
    datasets: dict

    @property
    def data(self) -> dict:
        """The run's data section (hparams/data.yaml with its overrides)."""
        return self.hparams["data"]


def load_hparams(hparams_file: str, overrides, required: list[str] = RUN_KEYS) -> dict:
    """Load a recipe yaml and check the keys a run needs are there (one line if not)."""
    hparams = load_yaml(hparams_file, overrides)
    check_hparams(hparams, required, str(hparams_file))
    return hparams


def parse(argv: list[str]) -> tuple[str, dict, dict]:
    """SpeechBrain's command line: (yaml path, run options, overrides as a dict)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    return hparams_file, run_opts, parse_overrides(overrides)


def setup(argv: list[str], required: list[str] = RUN_KEYS, training: bool = False) -> Experiment:
    """Parse arguments, load the yaml, write the run folder, prepare data on the main
    process, build the datasets. Only training records the yaml and overrides it ran with
    (what export rebuilds from); evaluating a run never rewrites them."""
    hparams_file, run_opts, overrides = parse(argv)
    sb.utils.distributed.ddp_init_group(run_opts)  # no-op unless started by torchrun
    hparams = load_hparams(hparams_file, overrides, required)
    write_run_folder(hparams_file, overrides, hparams["output_folder"], training)
    data = hparams["data"]
    if "classifier" in hparams:
        check_sample_rate(hparams["classifier"].sample_rate, data["sample_rate"], "the data")
    run_on_main(data["prepare"])
    datasets = build_datasets(
        data["manifests"], data["prepared_folder"], hparams["labels"], data["sample_rate"]
    )
    return Experiment(hparams_file, hparams, overrides, run_opts, datasets)


def write_run_folder(
    hparams_file: str, overrides: dict, output_folder: str, training: bool
) -> None:
    """The run folder: logs, the resolved yaml to read, and (training) the yaml as written,
    with what it includes, plus the overrides, which export rebuilds the run from."""
    sb.create_experiment_directory(experiment_directory=output_folder)
    if not if_main_process() or not training:
        return
    folder = Path(output_folder)
    try:
        resolved = resolved_yaml(hparams_file, overrides)
    except Exception as err:  # a value that cannot be written back as yaml
        resolved = f"# could not be resolved: {err}\n"
    (folder / "hyperparams.yaml").write_text(
        f"# Resolved from {Path(hparams_file).resolve()} with the overrides below\n"
        f"# {overrides}\n{resolved}"
    )
    copy_with_includes(hparams_file, folder, SOURCE_YAML)
    (folder / OVERRIDES_YAML).write_text(yaml.safe_dump(overrides, sort_keys=True))
