"""SpeechBrain data pipelines over JSON manifests: audio, class index, and mixture stems."""

from __future__ import annotations

import json
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from interpreters.audio import load_audio
from interpreters.errors import InterpreterError


def load_manifest(path: str | Path, data_folder: str | Path, labels: list[str]) -> DynamicItemDataset:
    """Read one manifest, checking it exists and names only known classes."""
    path = Path(path)
    if not path.is_file():
        raise InterpreterError(f"manifest {path} does not exist; run data preparation first")
    with open(path) as stream:
        entries = json.load(stream)
    unknown = {e["label"] for e in entries.values()} - set(labels)
    if unknown:
        raise InterpreterError(
            f"manifest {path} has labels unknown to the classifier: {sorted(unknown)}; "
            f"known labels are {labels}"
        )
    return DynamicItemDataset.from_json(str(path), replacements={"data_root": str(data_folder)})


def add_pipelines(dataset: DynamicItemDataset, labels: list[str], sample_rate: int) -> None:
    """Attach audio and label pipelines; mixture manifests also get their two stems."""
    index = {label: i for i, label in enumerate(labels)}

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio(wav: str) -> torch.Tensor:
        return load_audio(wav, sample_rate)

    @sb.utils.data_pipeline.takes("label")
    @sb.utils.data_pipeline.provides("label_index")
    def label(name: str) -> torch.Tensor:
        return torch.tensor([index[name]])

    dataset.add_dynamic_item(audio)
    dataset.add_dynamic_item(label)
    keys = ["id", "sig", "label_index"]
    if any("stem1" in entry for entry in dataset.data.values()):
        dataset.add_dynamic_item(_stems(index, sample_rate))
        keys += ["stem1_sig", "stem2_sig", "stem_labels"]
    dataset.set_output_keys(keys)


def _stems(index: dict[str, int], sample_rate: int):
    """Pipeline giving both stems of a mixture and their class indices [2]."""

    @sb.utils.data_pipeline.takes("stem1", "stem2", "label1", "label2")
    @sb.utils.data_pipeline.provides("stem1_sig", "stem2_sig", "stem_labels")
    def stems(path1: str, path2: str, label1: str, label2: str):
        yield load_audio(path1, sample_rate)
        yield load_audio(path2, sample_rate)
        yield torch.tensor([index.get(label1, -1), index.get(label2, -1)])

    return stems


def build_datasets(
    manifests: dict[str, str], data_folder: str, labels: list[str], sample_rate: int
) -> dict[str, DynamicItemDataset]:
    """One DynamicItemDataset per manifest (train, valid, test, mixtures, ...)."""
    datasets = {}
    for name, path in manifests.items():
        dataset = load_manifest(path, data_folder, labels)
        add_pipelines(dataset, labels, sample_rate)
        datasets[name] = dataset
    return datasets
