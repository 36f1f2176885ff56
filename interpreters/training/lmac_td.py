"""Training LMAC-TD: l_in·CE(kept) − l_out·CE(removed) + reg·mean|log1p STFT(kept)|
− consistency·SI-SNR(kept + removed, input), on random crops as SepFormer recipes train."""

from __future__ import annotations

import speechbrain as sb
import torch

from interpreters.explainers.base import Explanation, classify_halves
from interpreters.training.brain import InterpreterBrain, decision_cross_entropy


class LMACTDBrain(InterpreterBrain):
    """Keep what makes the decision, remove what does not, prefer quiet explanations."""

    required_hparams = InterpreterBrain.required_hparams + [
        "l_in",
        "l_out",
        "reg",
        "consistency",
        "training_crop",
    ]

    def compute_forward(self, batch, stage):
        """As the base Brain, but training sees one random ``training_crop`` (seconds) per batch."""
        wavs, lens = batch.sig.data.to(self.device), batch.sig.lengths.to(self.device)
        if stage == sb.Stage.TRAIN and self.hparams.training_crop:
            wavs, lens = self.random_crop(wavs, lens)
        explanation = self.explainer.explain(wavs, lens)
        return explanation, classify_halves(self.classifier, explanation)

    def random_crop(
        self, wavs: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same random window of ``training_crop`` seconds from every waveform of the batch."""
        size = int(self.hparams.training_crop * self.classifier.sample_rate)
        if wavs.shape[-1] <= size:
            return wavs, lens
        start = int(torch.randint(0, wavs.shape[-1] - size + 1, ()))
        valid = (lens * wavs.shape[-1] - start) / size
        return wavs[:, start : start + size], valid.clamp(1 / size, 1.0)

    def loss(
        self, explanation: Explanation, in_logits: torch.Tensor, out_logits: torch.Tensor
    ) -> torch.Tensor:
        """The LMAC-TD objective; optionally explanation + residual must add up to the input."""
        hp = self.hparams
        target = explanation.target
        kept = self.explainer.front_end.analyse(explanation.interpretation).compressed
        loss = (
            hp.l_in * decision_cross_entropy(in_logits, target)
            - hp.l_out * decision_cross_entropy(out_logits, target)
            + hp.reg * kept.mean()
        )
        if hp.consistency > 0:
            loss = loss - hp.consistency * self.explainer.reconstruction_si_snr(explanation).mean()
        return loss
