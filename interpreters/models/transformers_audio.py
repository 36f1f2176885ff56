"""Any transformers audio classifier (AutoModelForAudioClassification) under the one contract.

Features are the model's own feature extractor recomputed in torch (``transformers_features``).
Hidden maps are encoder blocks' outputs, read through the token geometry the model's config
declares and handed over as [B, C, T', F'] covering the input (the padding the model adds is
cropped): AST tokens are 2 special tokens then a (frequency patch x time patch) grid, frequency
major; wav2vec2/HuBERT tokens are the conv encoder's frames; Whisper's are 2-frame steps of the
30 s window. Each map is computed by a ``TokenMap`` module (``maps.<k>``) that the tokens pass
through on their way to the logits, so GradCAM on ``maps.<k>`` (layout CTF) differentiates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from interpreters.errors import InterpreterError, first_line
from interpreters.models.base import AudioClassifier, InFolder
from interpreters.models.transformers_features import front_end_for
from interpreters.sources import check_pretrained_source

DEFAULT_HIDDEN_LAYERS = 3


def load_transformers(source: str, key: str = "classifier_source"):
    """AutoModelForAudioClassification and AutoFeatureExtractor from a folder or hub id;
    one-line errors, within seconds when the hub is unreachable."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    source = check_pretrained_source(source, key, f"point {key} at one")
    try:
        model = AutoModelForAudioClassification.from_pretrained(source)
        extractor = AutoFeatureExtractor.from_pretrained(source)
    except Exception as err:
        raise InterpreterError(
            f"{key} {source} is not a loadable transformers audio classifier ({first_line(err)});"
            f" point {key} at a folder written by save_pretrained of the model and its "
            "feature extractor"
        ) from None
    return model, extractor


def class_labels(config, source: str) -> list[str]:
    """``config.id2label`` in index order; one line when it does not cover every output."""
    id2label = {int(index): label for index, label in (config.id2label or {}).items()}
    if sorted(id2label) != list(range(config.num_labels)):
        raise InterpreterError(
            f"{source}: config.json id2label does not name classes 0..{config.num_labels - 1}; "
            "set id2label for every output"
        )
    return [id2label[index] for index in range(config.num_labels)]


@dataclass(frozen=True)
class TokenGeometry:
    """How an encoder block's tokens [B, L, D] lie over time and frequency.

    ``prefix`` special tokens come first; the rest is ``bands`` frequency rows of time steps,
    frequency major (``bands`` = 1 for a sequence). With a fixed window, ``positions`` time
    steps span ``window_frames`` feature frames; the input covers the first of them.
    """

    prefix: int = 0
    bands: int = 1
    window_frames: int | None = None
    positions: int | None = None
    overhang: float = 0.0
    frequency_scale: str = "linear"
    block_layout: str | None = None

    def span(self, frames: int) -> int | None:
        """Time steps covering the input from its ``frames`` feature frames, of which the last
        ``overhang`` lie past its end unless they fill the window (None: the whole sequence)."""
        if self.window_frames is None:
            return None
        covered = frames if frames >= self.window_frames else frames - self.overhang
        return max(1, round(covered * self.positions / self.window_frames))


def token_geometry(config, extractor, source: str) -> TokenGeometry:
    """The declared geometry of the model's encoder tokens, from its config."""
    kind, name = config.model_type, type(extractor).__name__
    if kind == "audio-spectrogram-transformer" and name == "ASTFeatureExtractor":
        return TokenGeometry(
            prefix=2,
            bands=(config.num_mel_bins - config.patch_size) // config.frequency_stride + 1,
            window_frames=config.max_length,
            positions=(config.max_length - config.patch_size) // config.time_stride + 1,
            frequency_scale="mel",
        )
    if kind == "whisper" and name == "WhisperFeatureExtractor":
        return TokenGeometry(
            window_frames=extractor.nb_max_frames,
            positions=config.max_source_positions,
            overhang=(extractor.n_fft // 2) / extractor.hop_length,
            frequency_scale="mel",
        )
    if name == "Wav2Vec2FeatureExtractor" and hasattr(config, "conv_stride"):
        return TokenGeometry(block_layout="TC")
    raise InterpreterError(
        f"{source}: a {kind} model with {name} is not supported yet (supported: AST with "
        "ASTFeatureExtractor, wav2vec2-style models with Wav2Vec2FeatureExtractor, Whisper with "
        "WhisperFeatureExtractor)"
    )


def span_time(maps: torch.Tensor, span: int | None) -> torch.Tensor:
    """Maps [B, C, T, F] cropped (or zero-padded past the model's window) to ``span`` steps."""
    if span is None or span == maps.shape[2]:
        return maps
    if span < maps.shape[2]:
        return maps[:, :, :span]
    return F.pad(maps, (0, 0, 0, span - maps.shape[2]))


class TokenMap(nn.Module):
    """Encoder tokens [B, L, D] -> map [B, D, T', F'] over the input, by the declared geometry."""

    def __init__(self, prefix: int, bands: int) -> None:
        super().__init__()
        self.prefix = prefix
        self.bands = bands

    def grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every non-special token as [B, D, T, F] (time first)."""
        body = tokens[:, self.prefix :]
        batch, count, dim = body.shape
        return body.reshape(batch, self.bands, count // self.bands, dim).permute(0, 3, 2, 1)

    def forward(self, tokens: torch.Tensor, span: int | None) -> torch.Tensor:
        """The map of the time steps the input covers."""
        return span_time(self.grid(tokens), span)

    def restore(self, maps: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` with the map written back (same values), so the logits depend on it."""
        grid = self.grid(tokens)
        seen = min(maps.shape[2], grid.shape[2])
        grid = torch.cat([maps[:, :, :seen], grid[:, :, seen:]], dim=2)
        body = grid.permute(0, 3, 2, 1).reshape(tokens.shape[0], -1, tokens.shape[2])
        return torch.cat([tokens[:, : self.prefix], body], dim=1)


def through_map(tap: TokenMap, span, captured: list, module, args, output):
    """Forward hook: route a block's tokens through ``tap`` and keep the map."""
    tokens = output[0] if isinstance(output, tuple) else output
    maps = tap(tokens, span)
    captured.append(maps)
    tokens = tap.restore(maps, tokens)
    return (tokens, *output[1:]) if isinstance(output, tuple) else tokens


def module_list(model: nn.Module, suffix: str) -> str | None:
    """Name of the first ModuleList in ``model`` named ``*<suffix>``."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith(suffix):
            return name
    return None


def encoder_blocks(model: nn.Module, source: str) -> str:
    """Name of the encoder's block list: the ModuleList of as many blocks as the config says."""
    config = model.config
    count = getattr(config, "encoder_layers", None) or config.num_hidden_layers
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) != count:
            continue
        if name.rsplit(".", 1)[-1] in ("layers", "layer") and "decoder" not in name.split("."):
            return name
    raise InterpreterError(f"{source}: found no list of {count} encoder blocks in the model")


class TransformersClassifier(AudioClassifier):
    """A transformers audio classifier from a folder or hub id (``source``).

    ``hidden_layers``: encoder block indices whose outputs are the hidden maps (negative counts
    from the end; default the last three). ``layer_layout``: ``maps.<k>`` are CTF; wav2vec2-style
    encoder blocks (and everything inside them) are TC, their conv encoder layers CT. AST and
    Whisper blocks declare None: AST tokens are a frequency-major patch grid after two special
    tokens, Whisper's span the 30 s padding, and no one LAYOUTS entry says that; use ``maps.<k>``.
    """

    def __init__(
        self,
        source: str,
        hidden_layers: list[int] | None = None,
        key: str = "classifier_source",
    ) -> None:
        super().__init__()
        model, extractor = load_transformers(source, key)
        self.model = model.eval().requires_grad_(False)
        self.extractor = front_end_for(extractor, str(source))
        self.hf_extractor = extractor  # saved with the model by an export
        self.input_name = extractor.model_input_names[0]
        self.labels = class_labels(model.config, str(source))
        self.sample_rate = int(extractor.sampling_rate)
        self.geometry = token_geometry(model.config, extractor, str(source))
        self.frequency_scale = self.geometry.frequency_scale
        self.blocks = f"model.{encoder_blocks(self.model, str(source))}"
        convs = module_list(self.model, "feature_extractor.conv_layers")
        self.conv_layers = f"model.{convs}" if convs else None
        count = len(self.get_submodule(self.blocks))
        last_few = range(-min(DEFAULT_HIDDEN_LAYERS, count), 0)
        chosen = last_few if hidden_layers is None else hidden_layers
        if any(not -count <= index < count for index in chosen):
            raise InterpreterError(
                f"hidden_layers {list(chosen)} of {source}: the encoder has {count} blocks; "
                f"use indices in {-count}..{count - 1}"
            )
        self.hidden_layers = sorted({index % count for index in chosen})
        self.maps = nn.ModuleList(
            TokenMap(self.geometry.prefix, self.geometry.bands) for _ in self.hidden_layers
        )
        self.hidden_channels = [int(model.config.hidden_size)] * len(self.hidden_layers)

    def export_arguments(self, folder) -> dict:
        """The model and its feature extractor saved with ``save_pretrained`` into
        ``folder/transformers``: the export reloads through ``from_pretrained``."""
        target = Path(folder) / "transformers"
        self.model.save_pretrained(target)
        self.hf_extractor.save_pretrained(target)
        return {"source": InFolder("transformers"), "hidden_layers": list(self.hidden_layers)}

    def export_state(self) -> None:
        """The weights travel in the saved model files."""
        return None

    def layer_layout(self, name: str) -> str | None:
        """Declared layouts: see the class docstring."""
        if name.startswith("maps."):
            return "CTF"
        if self.geometry.block_layout and name.startswith(self.blocks + "."):
            return self.geometry.block_layout
        if self.conv_layers and name.startswith(self.conv_layers + "."):
            index, *inner = name.removeprefix(self.conv_layers + ".").split(".")
            if index.isdigit() and inner in ([], ["conv"]):
                return "CT"
        return None

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """The extractor's features of the real input (time axis spanning it), in torch."""
        return self.extractor(wavs)

    def network_input(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> what the model itself reads (the extractor's output, padding included)."""
        return self.extractor.network_input(features)

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The model's logits and the chosen blocks' maps [B, C, T', F'] over the input."""
        span = self.geometry.span(features.shape[1])
        blocks = self.get_submodule(self.blocks)
        captured: list[torch.Tensor] = []
        hooks = [
            blocks[index].register_forward_hook(partial(through_map, tap, span, captured))
            for tap, index in zip(self.maps, self.hidden_layers)
        ]
        try:
            logits = self.model(**{self.input_name: self.network_input(features)}).logits
        finally:
            for hook in hooks:
                hook.remove()
        return logits, captured
