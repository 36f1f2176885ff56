"""Export a trained run as a self-contained pretrained folder (uploadable to the hub as is).

The folder holds the recipe yaml as written (``hyperparams.yaml``) with the files it includes,
the run's overrides, one ``<name>.ckpt`` per trained part, the classifier in ``classifier/``,
any other local source folder the recipe reads (``<key>/``, e.g. L2I's ``nmf_source``), the
label encoder and a model card.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from interpreters.checkpoints import trainable_parts
from interpreters.config import copy_with_includes, load_yaml
from interpreters.errors import InterpreterError
from interpreters.experiment import OVERRIDES_YAML, SOURCE_YAML
from interpreters.inference.legacy import explainer_of
from interpreters.models.loading import export_classifier

AUXILIARY_YAML = "auxiliary_sources.yaml"  # other *_source folders shipped in the export
INCLUDES_YAML = "included_yaml.yaml"  # the yaml files hyperparams.yaml includes


def export_interpreter(run_folder: str | Path, out_folder: str | Path) -> Path:
    """Write a self-contained pretrained folder from a trained run's best checkpoint."""
    run, out = Path(run_folder), Path(out_folder)
    if not (run / SOURCE_YAML).is_file():
        raise InterpreterError(
            f"run folder {run} has no {SOURCE_YAML}; pass --run the output_folder of a run "
            "trained with recipes/train.py"
        )
    overrides = yaml.safe_load((run / OVERRIDES_YAML).read_text()) or {}
    hparams = load_yaml(run / SOURCE_YAML, {**overrides, "output_folder": str(run)})
    explainer = explainer_of(hparams, str(run))
    parts = trainable_parts(hparams)
    checkpoint = hparams["checkpointer"].find_checkpoint(min_key="loss") if parts else None
    if parts and checkpoint is None:
        raise InterpreterError(f"run folder {run} has no checkpoint yet; train it first")
    out.mkdir(parents=True, exist_ok=True)
    for name in parts:
        shutil.copyfile(checkpoint.paramfiles[name], out / f"{name}.ckpt")
    export_classifier(explainer.classifier, out / "classifier")
    shutil.copyfile(out / "classifier" / "label_encoder.txt", out / "label_encoder.txt")
    included = copy_with_includes(run / SOURCE_YAML, out, "hyperparams.yaml")
    (out / INCLUDES_YAML).write_text(yaml.safe_dump(included))
    (out / OVERRIDES_YAML).write_text(yaml.safe_dump(frozen(hparams, overrides), sort_keys=True))
    (out / AUXILIARY_YAML).write_text(yaml.safe_dump(copy_auxiliary_sources(hparams, out)))
    (out / "README.md").write_text(model_card(explainer, run))
    return out


def frozen(hparams: dict, overrides: dict) -> dict:
    """The run's overrides, plus the values an export must not read from the training data
    again (a zero-shot classifier's class names, which its yaml reads off the dataset)."""
    if "class_names" in hparams:
        return {**overrides, "class_names": list(hparams["class_names"])}
    return overrides


def copy_auxiliary_sources(hparams: dict, out: Path) -> dict[str, list[str]]:
    """Copy the local folders of other ``*_source`` keys (e.g. L2I's NMF dictionary) into the
    export, so it stays self-contained; returns {key: files copied}."""
    copied = {}
    for key, value in hparams.items():
        if not key.endswith("_source") or key == "classifier_source":
            continue
        folder = Path(str(value))
        if not folder.is_dir():
            continue  # a hub id: fetched from the hub as in training
        files = sorted(p.name for p in folder.iterdir() if p.is_file())
        (out / key).mkdir(exist_ok=True)
        for name in files:
            shutil.copyfile(folder / name, out / key / name)
        copied[key] = files
    return copied


def model_card(explainer, run: Path) -> str:
    """A short README for the hub: what it explains, how to load it, its measured metrics."""
    table = (run / "metrics.md").read_text() if (run / "metrics.md").is_file() else "(none)"
    return (
        f"# {explainer.name} interpreter\n\n"
        f"Explains a classifier of {len(explainer.labels)} classes "
        f"({', '.join(explainer.labels)}) in sound: a mask, a listenable "
        "interpretation and its residual.\n\n"
        "```python\nfrom interpreters.inference import Interpreter\n"
        "interpreter = Interpreter.from_hparams(source='<this folder or repo id>')\n"
        "result = interpreter.interpret_file('clip.wav')\n```\n\n"
        "Command line: `python recipes/interpret.py --source <this> clip.wav --out out/`\n\n"
        f"## Metrics of the exported run ({run.name})\n\n{table}\n"
    )
