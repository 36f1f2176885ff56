"""A raw-waveform 1D CNN (AudioNet/M5 style): a strided first layer, then conv blocks."""

from __future__ import annotations

import torch
import torch.nn as nn

from interpreters.models.base import AudioClassifier, conv_block


class WaveformCNN(AudioClassifier):
    """Learns its own filterbank from samples; no STFT anywhere in the network."""

    def __init__(
        self,
        labels: list[str],
        sample_rate: int = 16000,
        first_kernel: int = 80,
        first_stride: int = 4,
        channels: list[int] = (32, 32, 64, 64),
        pool: int = 4,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.labels = list(labels)
        self.sample_rate = sample_rate
        self.stem = nn.Sequential(
            nn.Conv1d(1, channels[0], first_kernel, stride=first_stride, bias=False),
            nn.BatchNorm1d(channels[0]),
            nn.ReLU(),
            nn.MaxPool1d(pool, ceil_mode=True),
        )
        widths = list(channels)
        self.blocks = nn.ModuleList(
            conv_block(widths[i], widths[i + 1], dims=1, pool=pool)
            for i in range(len(channels) - 1)
        )
        self.hidden_channels = list(channels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * channels[-1], len(labels)))

    def layer_layout(self, name: str) -> str | None:
        """Every convolutional stage outputs CT maps."""
        return "CT" if name.startswith(("stem", "blocks")) else None

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """The waveform itself as a one-channel signal [B, 1, N]."""
        return wavs.unsqueeze(1)

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Stem, blocks, mean+max pooling over time; hidden maps [B, C, T', 1]."""
        x = self.stem(features)
        hidden = [x]
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        pooled = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        return self.head(pooled), [h.unsqueeze(-1) for h in hidden]
