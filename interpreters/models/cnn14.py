"""SpeechBrain's CNN14 on log1p Mel filterbanks, as in the upstream ESC-50 recipes."""

from __future__ import annotations

import torch
import torch.nn as nn
from speechbrain.lobes.models.Cnn14 import Cnn14
from speechbrain.processing.features import Filterbank

from interpreters.audio import FrontEnd
from interpreters.models.base import AudioClassifier


class CNN14Classifier(AudioClassifier):
    """CNN14 embedder (blocks 3-6 exposed as hidden maps over time x mel) with a linear head."""

    frequency_scale = "mel"

    def __init__(
        self,
        labels: list[str],
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 186,
        n_mels: int = 80,
        emb_dim: int = 2048,
    ) -> None:
        super().__init__()
        self.labels = list(labels)
        self.sample_rate = sample_rate
        self.front_end = FrontEnd(sample_rate, n_fft, n_fft, hop_length, "none")
        self.filterbank = Filterbank(
            n_mels=n_mels, sample_rate=sample_rate, n_fft=n_fft, log_mel=False
        )
        self.embedder = Cnn14(mel_bins=n_mels, emb_dim=emb_dim, return_reps=True)
        self.hidden_channels = [256, 512, 1024, emb_dim]
        self.head = nn.Linear(emb_dim, len(labels))

    def layer_layout(self, name: str) -> str | None:
        """Every convolutional stage outputs CTF maps."""
        return "CTF" if name.startswith(("embedder.conv_block",)) else None

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """log1p of the Mel filterbank of |STFT|: [B, T, n_mels]."""
        return torch.log1p(self.filterbank(self.front_end.analyse(wavs).compressed))

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """CNN14 embedding -> logits; its block outputs from shallow to deep."""
        embedding, (block6, block5, block4, block3) = self.embedder(features)
        return self.head(embedding.squeeze(1)), [block3, block4, block5, block6]
