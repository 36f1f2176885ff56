"""What every classifier we interpret offers: features, logits, hidden representations.

A classifier splits into a fixed front end (waveform -> features) and a network
(features -> logits + hidden maps), so interpreters can read hidden layers and attribution
methods can attach to the network alone. Constructor arguments are recorded, so a trained
classifier can be exported as a yaml that rebuilds it.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn as nn


class AudioClassifier(nn.Module):
    """Base class: subclasses implement ``features`` and ``classify``.

    ``labels`` are the class names in output order; ``hidden_channels`` the channel count of
    each hidden representation returned by ``classify`` (what an interpreter's decoder reads).
    """

    labels: list[str]
    sample_rate: int
    hidden_channels: list[int]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.__init__ = _recording_config(cls.__init__)

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> the network's input."""
        raise NotImplementedError

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Network input -> (logits [B, C], hidden representations, shallow to deep)."""
        raise NotImplementedError

    def forward_with_hidden(self, wavs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Waveforms -> (logits, hidden representations)."""
        return self.classify(self.features(wavs))

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, N] -> logits [B, C]."""
        return self.classify(self.features(wavs))[0]

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return len(self.labels)


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
