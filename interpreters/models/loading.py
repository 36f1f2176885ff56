"""Classifiers from a folder or hub id, and exported classifier folders.

An exported classifier is ``hyperparams.yaml`` (a ``classifier: !new:...`` entry that rebuilds it,
files it needs listed under ``extra_files`` and read from ``source_folder``) plus
``classifier.ckpt`` and ``label_encoder.txt``, fetched through SpeechBrain so a hub id and a
local folder take the same path.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from interpreters.config import load_yaml
from interpreters.models.base import InFolder
from interpreters.sources import fetch_files, load_state

SOURCE_FOLDER = "source_folder"  # yaml key: where an exported classifier's files are


def load_classifier(
    source: str,
    savedir: str | Path,
    kind: str | None = None,
    key: str = "classifier_source",
    labels: list[str] | None = None,
    **options,
):
    """A frozen classifier from a folder or hub id of any kind: this project's export, a
    SpeechBrain inference folder, a transformers audio classifier, a CLAP prompted with
    ``labels`` (detected unless ``kind`` names one; ``options`` go to the adapter)."""
    from interpreters.models.kinds import load_any_classifier

    classifier = load_any_classifier(source, savedir, kind, labels, key=key, **options)
    return classifier.eval().requires_grad_(False)


def load_exported(source: str, savedir: str | Path, key: str = "classifier_source"):
    """A classifier exported by this project (``export_classifier``) from a folder or hub id."""
    files = fetch_classifier(source, savedir, key)
    hyperparams = files["hyperparams"]
    text = Path(hyperparams).read_text()
    overrides = {SOURCE_FOLDER: str(Path(hyperparams).parent)} if extra_files(hyperparams) else {}
    classifier = load_yaml(hyperparams, overrides)["classifier"]
    if "\nstate_in_files: true" not in text:
        load_state(classifier, files["classifier"], key)
    return classifier.eval().requires_grad_(False)


def fetch_classifier(source: str, savedir: str | Path, key: str, subfolder: str = "") -> dict:
    """An exported classifier's files into ``savedir``: yaml, checkpoint, and any extra files
    its yaml lists (local paths by name)."""
    files = fetch_files(source, ["classifier"], savedir, key, subfolder)
    extra = extra_files(files["hyperparams"])
    if extra:
        files.update(fetch_files(source, [], savedir, key, subfolder, extra=tuple(extra)))
    return files


def extra_files(hyperparams: Path) -> list[str]:
    """The files besides the checkpoint an exported classifier's yaml says it needs."""
    for line in Path(hyperparams).read_text().splitlines():
        if line.startswith("extra_files:"):
            return list(yaml.safe_load(line.split(":", 1)[1]) or [])
    return []


def export_classifier(classifier, folder: str | Path) -> Path:
    """Write ``hyperparams.yaml`` + ``classifier.ckpt`` (+ label_encoder.txt, + the files the
    classifier's own export writes) that rebuild it from this folder alone."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.rglob("*"))
    arguments = classifier.export_arguments(folder)
    written = sorted(p for p in set(folder.rglob("*")) - before if p.is_file())
    files = [str(path.relative_to(folder)) for path in written]
    cls = classifier.export_class()
    state = classifier.export_state()
    header = "# Inference hyperparameters of a classifier exported by interpreters.\n"
    if state is None:
        header += "state_in_files: true   # the weights are in the files below\n"
    if files:
        header += f"{SOURCE_FOLDER}: .   # set to the folder holding the files when loaded\n"
        header += f"extra_files: {json.dumps(files)}\n"
    (folder / "hyperparams.yaml").write_text(
        header
        + f"sample_rate: {classifier.sample_rate}\n"
        + f"classifier: !new:{cls.__module__}.{cls.__qualname__}\n"
        + yaml_arguments(arguments)
    )
    if state is None:
        state = {}
    elif classifier.export_class() is not type(classifier):  # e.g. a module now TorchScript
        rebuilt = load_yaml(folder / "hyperparams.yaml", {SOURCE_FOLDER: str(folder)})
        state = rebuilt["classifier"].state_dict()
    torch.save(state, folder / "classifier.ckpt")
    (folder / "label_encoder.txt").write_text(
        "".join(f"'{label}' => {i}\n" for i, label in enumerate(classifier.labels))
        + "================\n'starting_index' => 0\n"
    )
    return folder


def yaml_arguments(arguments: dict) -> str:
    """Constructor arguments as an indented yaml mapping (values as JSON, which yaml reads);
    files inside the folder as references to it."""
    lines = []
    for name, value in arguments.items():
        if isinstance(value, InFolder):
            lines.append(f"    {name}: !ref <{SOURCE_FOLDER}>/{value}")
        else:
            lines.append(f"    {name}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"
