"""A small Conv2d classifier on log1p STFT magnitudes (the interpreters' own front end)."""

from __future__ import annotations

import torch
import torch.nn as nn

from interpreters.audio import FrontEnd
from interpreters.models.base import AudioClassifier, conv_block


class SpectrogramCNN(AudioClassifier):
    """Conv blocks over (time, frequency), mean+max pooling, linear head."""

    def __init__(
        self,
        labels: list[str],
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 256,
        channels: list[int] = (16, 32, 64, 128),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.labels = list(labels)
        self.sample_rate = sample_rate
        self.front_end = FrontEnd(sample_rate, n_fft, n_fft, hop_length, "log1p")
        self.feature_front_end = self.front_end
        widths = [1, *channels]
        self.blocks = nn.ModuleList(
            conv_block(widths[i], widths[i + 1], dims=2, pool=2) for i in range(len(channels))
        )
        self.hidden_channels = list(channels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * channels[-1], len(labels)))

    def layer_layout(self, name: str) -> str | None:
        """Every convolutional stage outputs CTF maps."""
        return "CTF" if name.startswith(("blocks",)) else None

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """log1p |STFT| as a one-channel image [B, 1, T, F]."""
        return self.front_end.analyse(wavs).compressed.unsqueeze(1)

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Blocks, then mean over time of the frequency max, and mean over both axes."""
        hidden = []
        x = features
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=3).mean(dim=2)], dim=1)
        return self.head(pooled), hidden
