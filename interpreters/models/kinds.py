"""Which kind of classifier a folder or hub id holds, and one loader for every kind.

Kinds: "interpreters" (this project's export: hyperparams.yaml with a ``classifier:`` entry and
classifier.ckpt), "speechbrain" (a SpeechBrain inference folder: hyperparams.yaml with
``embedding_model``, ``classifier``, ``label_encoder`` and ``pretrainer``, or a custom interface
.py next to a hyperparams.yaml with a ``pretrainer``), "transformers" (config.json with
``id2label`` and an audio-classification model type), "clap" (config.json of a ClapModel: a
zero-shot classifier over one prompt per class of ``labels``). For a hub id only those small
files are fetched to decide. An explicit kind overrides detection; a source that fits two
kinds asks for one.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml

from interpreters.errors import InterpreterError, first_line
from interpreters.sources import fetch_files, hub_reachable, is_local, unreachable_message

KINDS = {
    "interpreters": "hyperparams.yaml with a 'classifier:' entry + classifier.ckpt (our export)",
    "speechbrain": "hyperparams.yaml with embedding_model, classifier, label_encoder and "
    "pretrainer (EncoderClassifier/AudioClassifier layout), or a custom interface .py",
    "transformers": "config.json with id2label and an AutoModelForAudioClassification model type",
    "clap": "config.json of a ClapModel (zero-shot over the class names in zero_shot_labels)",
}
SPEECHBRAIN_KEYS = {"embedding_model", "classifier", "label_encoder", "pretrainer"}


class _TagIgnoringLoader(yaml.SafeLoader):
    """Reads a HyperPyYAML file's structure without building any of its objects."""


_TagIgnoringLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def hyperparams_keys(path: Path) -> set[str]:
    """Top-level keys of a (HyperPyYAML) hyperparams file; one line when it does not parse."""
    try:
        content = yaml.load(Path(path).read_text(), Loader=_TagIgnoringLoader)
    except yaml.YAMLError as err:
        raise InterpreterError(f"{path} is not readable yaml ({first_line(err)})") from None
    return set(content) if isinstance(content, dict) else set()


def is_audio_classifier_config(config: dict | None) -> bool:
    """Whether a config.json describes a model AutoModelForAudioClassification builds, with
    class names (an ASR checkpoint's architectures name no classification head)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

    if not config or not config.get("id2label"):
        return False
    heads = MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES
    architectures = config.get("architectures") or [heads.get(config.get("model_type"))]
    return config.get("model_type") in heads and heads[config["model_type"]] in architectures


def kinds_of(keys: set[str] | None, config: dict | None, files: set[str]) -> list[str]:
    """Every kind the fetched hyperparams keys, config.json and file names fit."""
    found = []
    if keys is not None:
        custom_interface = any(name.endswith(".py") for name in files) and "pretrainer" in keys
        if SPEECHBRAIN_KEYS <= keys or custom_interface:
            found.append("speechbrain")
        elif "classifier" in keys:  # a missing checkpoint is named when it is loaded
            found.append("interpreters")
    if is_audio_classifier_config(config):
        found.append("transformers")
    if config and config.get("model_type") == "clap":
        found.append("clap")
    return found


def none_of_these(source: str, key: str) -> InterpreterError:
    """The one-line error naming every accepted layout."""
    accepted = "; ".join(f"{kind}: {needs}" for kind, needs in KINDS.items())
    return InterpreterError(f"{key} {source} is no classifier we can load; accepted: {accepted}")


def local_files(folder: Path) -> tuple[set[str] | None, dict | None, set[str]]:
    """Hyperparams keys, config.json and file names of a local folder."""
    files = {path.name for path in folder.iterdir()}
    keys = hyperparams_keys(folder / "hyperparams.yaml") if "hyperparams.yaml" in files else None
    config = json.loads((folder / "config.json").read_text()) if "config.json" in files else None
    return keys, config, files


def hub_files(source: str, savedir: Path, key: str) -> tuple[set[str] | None, dict | None, set]:
    """Hyperparams keys and config.json of a hub id, fetching only those two small files."""
    from huggingface_hub import hf_hub_download

    online = hub_reachable()
    keys = files = None
    try:
        keys = hyperparams_keys(fetch_files(source, [], savedir, key)["hyperparams"])
        files = {"classifier.ckpt"}  # an export's checkpoint is checked when it is loaded
    except InterpreterError:
        pass
    try:
        path = hf_hub_download(source, "config.json", local_files_only=not online)
        config = json.loads(Path(path).read_text())
    except Exception:
        config = None
    if keys is None and config is None and not online:
        raise InterpreterError(unreachable_message(source, key))
    return keys, config, files or set()


def classifier_kind(
    source: str,
    savedir: str | Path | None = None,
    kind: str | None = None,
    key: str = "classifier_source",
) -> str:
    """The kind ("interpreters", "speechbrain", "transformers", "clap") of a folder or hub id; an
    explicit ``kind`` wins. A hub id's small files go to ``savedir`` (a temporary folder when
    None)."""
    if kind is not None:
        if kind not in KINDS:
            raise InterpreterError(f"classifier_kind '{kind}' is unknown; use one of {list(KINDS)}")
        return kind
    source = str(source)
    if is_local(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise InterpreterError(f"{key} {source} is not a folder; point {key} at one")
        found = kinds_of(*local_files(folder))
    else:
        savedir = Path(savedir) if savedir else Path(tempfile.mkdtemp(prefix="kind-"))
        found = kinds_of(*hub_files(source, savedir, key))
    if not found:
        raise none_of_these(source, key)
    if len(found) > 1:
        raise InterpreterError(
            f"{key} {source} fits several kinds ({', '.join(found)}); set classifier_kind "
            "to the one to load"
        )
    return found[0]


def load_any_classifier(
    source: str,
    savedir: str | Path,
    kind: str | None = None,
    labels: list[str] | None = None,
    **options,
):
    """An AudioClassifier of the source's kind (detected unless ``kind`` is given); ``labels``
    are the class names a zero-shot CLAP prompts for (the other kinds carry their own)."""
    key = options.get("key", "classifier_source")
    kind = classifier_kind(source, savedir, kind, key)
    if kind == "clap":
        return zero_shot_clap(source, labels, key)
    if kind == "interpreters":
        from interpreters.models.loading import load_exported

        return load_exported(source, savedir, key)
    if kind == "speechbrain":
        from interpreters.models.speechbrain_inference import SpeechBrainClassifier

        return SpeechBrainClassifier(source, savedir=savedir, **options)
    from interpreters.models.transformers_audio import TransformersClassifier

    return TransformersClassifier(source, **options)


def zero_shot_clap(source: str, labels: list[str] | None, key: str):
    """A CLAP folder or hub id as a classifier over one prompt per class name."""
    from interpreters.models.clap import ZeroShotCLAP, load_clap

    if not labels:
        raise InterpreterError(
            f"{key} {source} is a CLAP, which classifies by text prompts: set zero_shot_labels "
            "to the class names to prompt for"
        )
    model, processor = load_clap(source, key)
    return ZeroShotCLAP(labels=list(labels), model=model, processor=processor)
