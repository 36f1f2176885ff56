"""The one classifier contract every explainer reads, and the map geometry that goes with it.

A classifier takes waveforms [B, N] at ``sample_rate`` and returns logits [B, C] and hidden
representations. Hidden maps are always handed over in one layout, [B, C, T', F']: T' spans the
input's duration (padding cropped), F' spans 0 Hz .. Nyquist on the classifier's
``frequency_scale`` (F' = 1 for 1D convolutions and sequence models). Adapters bring other
layouts to it from declared axes (``canonical_map``); nothing here guesses an axis.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn as nn
import torch.nn.functional as F

from interpreters.errors import InterpreterError

LAYOUTS = {
    "CTF": "channels x time x frequency (Conv2d over a time-frequency image)",
    "CFT": "channels x frequency x time (Conv2d over a frequency-time image)",
    "TFC": "time x frequency x channels",
    "FTC": "frequency x time x channels",
    "CT": "channels x time (Conv1d)",
    "TC": "time x channels (a sequence model's hidden states)",
}
FREQUENCY_SCALES = ("linear", "mel")


def check_layout(layout: str, key: str = "layout") -> str:
    """``layout`` if it is one of LAYOUTS; otherwise a one-line error listing them."""
    if layout not in LAYOUTS:
        accepted = "; ".join(f"{name} = {meaning}" for name, meaning in LAYOUTS.items())
        raise InterpreterError(f"{key} '{layout}' is not a known layout; use one of: {accepted}")
    return layout


def canonical_map(hidden: torch.Tensor, layout: str, name: str = "hidden map") -> torch.Tensor:
    """A hidden tensor in its declared ``layout`` (batch first) -> [B, C, T, F] (F = 1 for 1D).

    The rank must match the layout; anything else is a one-line error naming the map.
    """
    check_layout(layout)
    if hidden.dim() != len(layout) + 1:
        raise InterpreterError(
            f"{name} has shape {tuple(hidden.shape)} but its declared layout {layout} "
            f"({LAYOUTS[layout]}) needs {len(layout) + 1} dimensions with the batch; "
            "declare the layout it really has"
        )
    order = [1 + layout.index(axis) for axis in "CT"]
    if "F" in layout:
        order.append(1 + layout.index("F"))
    canonical = hidden.permute(0, *order)
    return canonical if "F" in layout else canonical.unsqueeze(-1)


def frequency_positions(
    n_freqs: int, n_bands: int, sample_rate: int, scale: str, device=None
) -> torch.Tensor:
    """Where each of ``n_freqs`` linear STFT bins (0 .. Nyquist) falls on a map of ``n_bands``
    rows spanning 0 .. Nyquist on ``scale``, as fractional row indices (align_corners=False)."""
    if scale not in FREQUENCY_SCALES:
        raise InterpreterError(
            f"frequency_scale '{scale}' is unknown; use one of {list(FREQUENCY_SCALES)}"
        )
    hz = torch.linspace(0.0, sample_rate / 2, n_freqs, device=device, dtype=torch.float64)
    if scale == "mel":
        position = mel(hz) / mel(torch.tensor(sample_rate / 2, dtype=torch.float64))
    else:
        position = hz / (sample_rate / 2)
    return (position * n_bands - 0.5).clamp(0, n_bands - 1).float()


def mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def to_grid(
    maps: torch.Tensor, frames: int, freqs: int, scale: str = "linear", sample_rate: int = 16000
) -> torch.Tensor:
    """Maps [B, C, T', F'] on a classifier's grid -> [B, C, frames, freqs] on the front end's
    linear STFT grid: linear in time; in frequency linear for a linear-scale map, at each bin's
    mel position for a mel-scale one; a map with F' = 1 is spread over every frequency."""
    batch, channels, _, bands = maps.shape
    if bands == 1:
        over_time = F.interpolate(maps[..., 0], size=frames, mode="linear", align_corners=False)
        return over_time[..., None].expand(-1, -1, -1, freqs)
    if scale == "linear":
        return F.interpolate(maps, size=(frames, freqs), mode="bilinear", align_corners=False)
    over_time = F.interpolate(maps, size=(frames, bands), mode="bilinear", align_corners=False)
    position = frequency_positions(freqs, bands, sample_rate, scale, maps.device)
    below = position.floor().long()
    above = (below + 1).clamp_max(bands - 1)
    weight = (position - below).to(maps.dtype)
    return over_time[..., below] * (1 - weight) + over_time[..., above] * weight


class AudioClassifier(nn.Module):
    """Base class of every classifier we explain: subclasses implement ``features`` and
    ``classify``; ``classify`` returns hidden maps already in the canonical [B, C, T', F'].

    ``labels``: class names in output order. ``hidden_channels``: channel count of each hidden
    map. ``frequency_scale``: how the maps' frequency axis is spaced ("linear" or "mel").
    ``feature_front_end``: the FrontEnd whose compressed magnitude [B, 1, T, F] the network
    reads, when it reads one (attribution then differentiates the features themselves).
    """

    labels: list[str]
    sample_rate: int
    hidden_channels: list[int]
    frequency_scale: str = "linear"
    # no class default for feature_front_end: a FrontEnd (an nn.Module) set on an instance is
    # registered as a submodule, which a class attribute would shadow; read it with
    # ``feature_front_end(classifier)``

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.__init__ = _recording_config(cls.__init__)

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> the network's input."""
        raise NotImplementedError

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Network input -> (logits [B, C], hidden maps [B, C, T', F'], shallow to deep)."""
        raise NotImplementedError

    def forward_with_hidden(self, wavs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Waveforms -> (logits, hidden maps)."""
        return self.classify(self.features(wavs))

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> logits [B, C]."""
        return self.classify(self.features(wavs))[0]

    def layer_layout(self, name: str) -> str | None:
        """The declared layout of submodule ``name``'s output (None when not declared)."""
        return None

    def export_class(self) -> type:
        """The class an export of this classifier rebuilds (its own, by default)."""
        return type(self)

    def export_arguments(self, folder) -> dict:
        """Constructor arguments that rebuild this classifier from an exported ``folder``
        (files it needs are written there; their names are given as ``InFolder``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.config.items()}

    def export_state(self) -> dict | None:
        """The state dict an export saves as classifier.ckpt; None when the files written by
        ``export_arguments`` hold the weights already."""
        return self.state_dict()

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return len(self.labels)


class InFolder(str):
    """A file name inside an exported classifier's folder (written relative to it)."""


def _recording_config(init):
    """Wrap ``__init__`` so the outermost call stores its bound arguments as ``self.config``."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        config = dict(bound.arguments)
        config.pop("self")
        self.config = config

    return wrapped


def conv_block(in_channels: int, out_channels: int, dims: int, pool: int | tuple) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU -> max-pool, all as modules so LRP rules can attach."""
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    pool_layer = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
    return nn.Sequential(
        conv(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        norm(out_channels),
        nn.ReLU(),
        pool_layer(pool, ceil_mode=True),
    )


def same_front_end(a, b) -> bool:
    """Whether two FrontEnds give the same compressed magnitude (rate, STFT, compression)."""
    keys = ("sample_rate", "n_fft", "win_length", "hop_length", "compression")
    return a is not None and b is not None and all(getattr(a, k) == getattr(b, k) for k in keys)


def check_sample_rate(classifier_rate: int, rate: int, what: str) -> None:
    """One line naming both rates when ``what`` runs at another rate than the classifier."""
    if int(classifier_rate) != int(rate):
        raise InterpreterError(
            f"{what} is at {rate} Hz but the classifier expects {classifier_rate} Hz; set "
            f"sample_rate: {classifier_rate} (data are then prepared at the classifier's rate)"
        )


def feature_front_end(classifier: nn.Module):
    """The FrontEnd whose compressed magnitude the classifier reads, or None when it reads
    something else (waveforms, mel features of its own)."""
    return getattr(classifier, "feature_front_end", None)
