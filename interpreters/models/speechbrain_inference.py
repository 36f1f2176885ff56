"""A SpeechBrain inference folder or hub id under the one classifier contract.

Loaded through SpeechBrain's own interface: ``EncoderClassifier.from_hparams`` for the
EncoderClassifier layout (compute_features -> mean_var_norm -> embedding_model -> classifier),
speechbrain.inference.classifiers.AudioClassifier for its layout (compute_stft -> magnitude ->
compute_fbank or log1p -> embedding_model -> classifier, as speechbrain/cnn14-esc50), or
``foreign_class`` for a custom interface file. Its modules are then run here in that interface's
order, so outputs are SpeechBrain's, and hidden maps come from forward hooks on submodules with
declared layouts.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
from speechbrain.processing.features import spectral_magnitude
from speechbrain.utils.fetching import FetchConfig

from interpreters.errors import InterpreterError, first_line
from interpreters.models.base import AudioClassifier, InFolder, canonical_map, check_layout
from interpreters.models.kinds import hyperparams_keys
from interpreters.sources import fetch_files, hub_reachable, is_local

ASSUMED_RATE = 16000  # what SpeechBrain's interfaces document when nothing declares a rate
SOFTMAXES = ("Softmax", "LogSoftmax")
PIPELINES = {
    "encoder": ("compute_features", "embedding_model", "classifier"),
    "spectrogram": ("compute_stft", "embedding_model", "classifier"),
}


def declared_layouts(embedding_model: nn.Module) -> tuple[dict[str, str], list[str]]:
    """Layouts of the submodules we know in an embedding model (names relative to it) and the
    default hidden layers: CNN14 conv blocks are CTF over (time, mel), defaults blocks 3-6;
    ECAPA blocks and MFA are CT, defaults the SE-Res2 blocks; x-vector TDNN layers run
    channels-last, TC, defaults their BatchNorm outputs."""
    kind = type(embedding_model).__name__
    if kind == "Cnn14":
        return {f"conv_block{i}": "CTF" for i in range(1, 7)}, [
            f"conv_block{i}" for i in range(3, 7)
        ]
    if kind == "ECAPA_TDNN":
        blocks = [f"blocks.{i}" for i in range(len(embedding_model.blocks))]
        return {**dict.fromkeys(blocks, "CT"), "mfa": "CT"}, blocks[1:]
    if kind == "Xvector":
        names = [type(m).__name__ for m in embedding_model.blocks]
        tdnn = range(names.index("StatisticsPooling"))
        norms = [f"blocks.{i}" for i in tdnn if names[i] == "BatchNorm1d"]
        return {f"blocks.{i}": "TC" for i in tdnn}, norms
    return {}, []


def load_interface(source: str, savedir: Path, interface: str | None, key: str):
    """SpeechBrain's own interface for ``source``: EncoderClassifier, AudioClassifier, or the
    class that ``interface`` ("file.py:ClassName") names, through foreign_class."""
    from speechbrain.inference.classifiers import AudioClassifier as SpectrogramInterface
    from speechbrain.inference.classifiers import EncoderClassifier
    from speechbrain.inference.interfaces import foreign_class

    keys = hyperparams_keys(fetch_files(source, [], savedir, key)["hyperparams"])
    local = is_local(source)
    resolved = str(Path(source).expanduser().resolve()) if local else source
    options = {
        "source": resolved,
        "savedir": str(savedir),
        # a downloaded hub folder still names the hub in pretrained_path: read the folder
        "overrides": {"pretrained_path": resolved} if local and "pretrained_path" in keys else {},
        "run_opts": {"device": "cpu"},
        "fetch_config": FetchConfig() if local else FetchConfig(allow_network=hub_reachable()),
    }
    try:
        if interface:
            pymodule, _, classname = interface.partition(":")
            return foreign_class(pymodule_file=pymodule, classname=classname, **options)
        cls = SpectrogramInterface if "compute_stft" in keys else EncoderClassifier
        return cls.from_hparams(**options)
    except Exception as err:
        raise InterpreterError(
            f"{key} {source} did not load through SpeechBrain ({first_line(err)}); check its "
            "hyperparams.yaml and that the files its pretrainer names are there"
        ) from None


def rate_of(hparams, mods, sample_rate: int | None, source: str) -> int:
    """The classifier's rate: hyperparams ``sample_rate``, else its STFT's; ``sample_rate``
    must agree with a declared one; 16 kHz (SpeechBrain's convention) when none is declared."""
    front = mods["compute_stft"] if "compute_stft" in mods else mods["compute_features"]
    stft = getattr(front, "compute_STFT", front)
    declared = getattr(hparams, "sample_rate", None) or getattr(stft, "sample_rate", None)
    if declared and sample_rate and int(declared) != int(sample_rate):
        raise InterpreterError(
            f"{source} declares sample_rate {declared} but sample_rate {sample_rate} was given; "
            "drop the option or fix the hyperparams"
        )
    return int(declared or sample_rate or ASSUMED_RATE)


def collected_names(hyperparams: Path) -> dict[str, str]:
    """SpeechBrain's pretrainer collects each file as ``<loadable>.ckpt``: {that name: the file
    name the yaml's pretrainer paths give it (e.g. label_encoder.txt)}, read off the yaml."""
    import ruamel.yaml

    tree = ruamel.yaml.YAML().load(Path(hyperparams).read_text()) or {}
    paths = (tree.get("pretrainer") or {}).get("paths") or {}
    names = {}
    for name, path in paths.items():
        text = str(getattr(path, "value", path))
        names[f"{name}.ckpt"] = text.rsplit("/", 1)[-1]
    return names


class SpeechBrainClassifier(AudioClassifier):
    """A SpeechBrain EncoderClassifier / AudioClassifier (folder or hub id) as a classifier.

    Logits: the ``classifier`` module's output with a final Softmax/LogSoftmax layer left off
    (x-vector heads), otherwise its output as is (ECAPA heads give cosine scores);
    ``speechbrain_output`` puts the left-off layer back. ``hidden_layers``: {submodule name:
    layout} (names as in ``named_modules``, e.g. "mods.embedding_model.blocks.2"), default per
    embedding model (see ``declared_layouts``; none for a model not listed there, until
    ``hidden_layers`` names some); an unpadded batch's maps span the input as
    they come (pooling floors drop at most a pooled frame). ``sample_rate``: see ``rate_of``.
    ``interface``: "custom_interface.py:ClassName" to load through foreign_class; its modules
    must still be one of PIPELINES. ``savedir``: where SpeechBrain collects the files (a new
    temporary folder when None).
    """

    def __init__(
        self,
        source: str,
        savedir: str | Path | None = None,
        hidden_layers: dict[str, str] | None = None,
        sample_rate: int | None = None,
        interface: str | None = None,
        frequency_scale: str | None = None,
        key: str = "classifier_source",
    ) -> None:
        super().__init__()
        savedir = Path(savedir) if savedir else Path(tempfile.mkdtemp(prefix="speechbrain-"))
        loaded = load_interface(str(source), savedir, interface, key)
        self.files, self.interface = savedir, interface  # what an export copies
        self.collected = collected_names(Path(savedir) / "hyperparams.yaml")
        self.mods = loaded.mods
        fits = [name for name, needs in PIPELINES.items() if set(needs) <= set(self.mods)]
        self.pipeline = fits[0] if fits else None
        if self.pipeline is None:
            raise InterpreterError(
                f"{source}: its modules ({', '.join(self.mods)}) fit no pipeline we run; it "
                f"needs {' or '.join('+'.join(needs) for needs in PIPELINES.values())}"
            )
        hparams = loaded.hparams
        self.spec_mag_power = getattr(hparams, "spec_mag_power", 1)
        self.use_melspectra = bool(getattr(hparams, "use_melspectra", True))
        self.sample_rate = rate_of(hparams, self.mods, sample_rate, str(source))
        self.labels = labels_of(getattr(hparams, "label_encoder", None), str(source))
        spectra = self.pipeline == "spectrogram" and not self.use_melspectra
        self.frequency_scale = frequency_scale or ("linear" if spectra else "mel")
        self.head_layers, self.stripped = softmax_split(self.mods.classifier)
        known, defaults = declared_layouts(self.mods.embedding_model)
        self.layouts = {f"mods.embedding_model.{name}": layout for name, layout in known.items()}
        if hidden_layers is None:
            hidden_layers = {f"mods.embedding_model.{n}": known[n] for n in defaults}
        for name, layout in hidden_layers.items():
            check_layout(layout, f"hidden_layers['{name}']")
            self.named_submodule(name)
        self.hidden_layers = dict(hidden_layers)
        self.layouts.update(self.hidden_layers)
        probe = torch.randn(1, self.sample_rate, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            logits, hidden = self.forward_with_hidden(probe * 0.1)
        if logits.shape[-1] != len(self.labels):
            raise InterpreterError(
                f"{source}: the classifier has {logits.shape[-1]} outputs but the label encoder "
                f"names {len(self.labels)} classes; fix label_encoder.txt"
            )
        self.hidden_channels = [h.shape[1] for h in hidden]

    def export_arguments(self, folder) -> dict:
        """SpeechBrain's own files (hyperparams.yaml, checkpoints, label encoder) copied into
        ``folder/speechbrain``: the export reloads through SpeechBrain as the original did."""
        import shutil

        target = Path(folder) / "speechbrain"
        target.mkdir(parents=True, exist_ok=True)
        for path in Path(self.files).iterdir():
            if path.is_file():  # the pretrainer's files under the names its yaml gives them
                shutil.copyfile(path, target / self.collected.get(path.name, path.name))
        return {
            "source": InFolder("speechbrain"),
            "hidden_layers": dict(self.hidden_layers),
            "sample_rate": self.sample_rate,
            "interface": self.interface,
            "frequency_scale": self.frequency_scale,
        }

    def export_state(self) -> None:
        """The weights travel in SpeechBrain's own checkpoint files."""
        return None

    def named_submodule(self, name: str) -> nn.Module:
        """Submodule ``name``; an unknown one is a one-line error."""
        try:
            return self.get_submodule(name)
        except AttributeError:
            raise InterpreterError(
                f"hidden_layers: '{name}' is no submodule of the SpeechBrain classifier; use "
                "names like 'mods.embedding_model.blocks.1' (see named_modules())"
            ) from None

    def layer_layout(self, name: str) -> str | None:
        """The layout declared for submodule ``name`` (see ``declared_layouts``), or None."""
        return self.layouts.get(name)

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """The embedding model's input, computed by the interface's own modules."""
        if self.pipeline == "encoder":
            features = self.mods.compute_features(wavs)
            if "mean_var_norm" in self.mods:
                features = self.mods.mean_var_norm(features, self.full_lengths(wavs))
            return features
        power = spectral_magnitude(self.mods.compute_stft(wavs), power=self.spec_mag_power)
        return self.mods.compute_fbank(power) if self.use_melspectra else torch.log1p(power)

    @staticmethod
    def full_lengths(x: torch.Tensor) -> torch.Tensor:
        """Relative lengths of an unpadded batch, as SpeechBrain passes them."""
        return torch.ones(x.shape[0], device=x.device)

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Embedding model then head; the hooked submodules' outputs as [B, C, T', F']."""
        captured: dict[str, torch.Tensor] = {}
        hooks = [
            self.named_submodule(name).register_forward_hook(partial(keep_output, name, captured))
            for name in self.hidden_layers
        ]
        try:
            if self.pipeline == "encoder":
                embedding = self.mods.embedding_model(features, self.full_lengths(features))
            else:
                embedding = self.mods.embedding_model(features)
                embedding = embedding[0] if isinstance(embedding, tuple) else embedding
                embedding = embedding.mean((-1, -2)) if embedding.ndim == 4 else embedding
            logits = self.head(embedding)
        finally:
            for hook in hooks:
                hook.remove()
        hidden = [canonical_map(captured[n], layout, n) for n, layout in self.hidden_layers.items()]
        return (logits.squeeze(1) if logits.dim() == 3 else logits), hidden

    def head(self, embedding: torch.Tensor) -> torch.Tensor:
        """The classifier module without its final softmax (when it ends with one)."""
        if self.head_layers is None:
            return self.mods.classifier(embedding)
        x = embedding
        for name in self.head_layers:
            x = self.mods.classifier.get_submodule(name)(x)
            x = x[0] if isinstance(x, tuple) else x
        return x

    def speechbrain_output(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> what the interface's classify_batch returns as out_prob."""
        if self.stripped is None:
            return logits
        return self.mods.classifier.get_submodule(self.stripped)(logits)


def softmax_split(head: nn.Module) -> tuple[list[str] | None, str | None]:
    """The head's layer names before a final Softmax/LogSoftmax and that layer's name; (None,
    None) when it does not end with one."""
    layers = list(head.named_children())
    if not layers or type(layers[-1][1]).__name__ not in SOFTMAXES:
        return None, None
    return [name for name, _ in layers[:-1]], layers[-1][0]


def keep_output(name: str, captured: dict, module, args, output) -> None:
    """Forward hook: keep a submodule's output (the first one when it returns several)."""
    captured[name] = output[0] if isinstance(output, (tuple, list)) else output


def labels_of(encoder, source: str) -> list[str]:
    """Class names in index order from the label encoder."""
    if encoder is None or not getattr(encoder, "ind2lab", None):
        raise InterpreterError(
            f"{source}: no label_encoder with labels in its hyperparams; add a CategoricalEncoder "
            "label_encoder loaded by the pretrainer from label_encoder.txt"
        )
    return [str(encoder.ind2lab[index]) for index in range(len(encoder.ind2lab))]
