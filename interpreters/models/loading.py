"""Classifiers from a folder or hub id: this project's exports (more kinds come through adapters).

An exported classifier is ``hyperparams.yaml`` (a ``classifier: !new:...`` entry that rebuilds it)
plus ``classifier.ckpt`` and ``label_encoder.txt``, fetched through SpeechBrain so a hub id and a
local folder take the same path.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from interpreters.config import load_yaml
from interpreters.sources import fetch_files, load_state


def load_classifier(
    source: str, savedir: str | Path, key: str = "classifier_source", subfolder: str = ""
):
    """Load a frozen classifier (module + labels) from a folder or hub id."""
    files = fetch_files(source, ["classifier"], savedir, key, subfolder)
    classifier = load_yaml(files["hyperparams"])["classifier"]
    load_state(classifier, files["classifier"], key)
    classifier.eval()
    classifier.requires_grad_(False)
    return classifier


def export_classifier(classifier, folder: str | Path) -> Path:
    """Write ``hyperparams.yaml`` + ``classifier.ckpt`` (+ label_encoder.txt) that rebuild it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cls = type(classifier)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in classifier.config.items()}
    body = yaml.safe_dump(config, default_flow_style=None, sort_keys=False, width=100)
    indented = "".join("    " + line + "\n" for line in body.splitlines())
    (folder / "hyperparams.yaml").write_text(
        "# Inference hyperparameters of a classifier exported by interpreters.\n"
        f"sample_rate: {classifier.sample_rate}\n"
        f"classifier: !new:{cls.__module__}.{cls.__qualname__}\n{indented}"
    )
    torch.save(classifier.state_dict(), folder / "classifier.ckpt")
    (folder / "label_encoder.txt").write_text(
        "".join(f"'{label}' => {i}\n" for i, label in enumerate(classifier.labels))
        + "================\n'starting_index' => 0\n"
    )
    return folder
