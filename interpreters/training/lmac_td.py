"""Training LMAC-TD: l_in·CE(kept) − l_out·CE(removed) + reg·mean|log1p STFT(kept)|
− consistency·SI-SNR(kept + removed, input), on random crops as SepFormer recipes train, and
(with ``mix_prob`` > 0) on mixtures of the batch as L-MAC trains (``training.mixing``); with two
targets, ``lambda_cover`` asks a mixture's two encoder masks to cover it between them (as
L-MAC's, weighted by the encoder features)."""

from __future__ import annotations

import speechbrain as sb
import torch

from interpreters.explainers.base import Explanation
from interpreters.training.brain import decision_cross_entropy
from interpreters.training.mixing import MixingBrain, pair_coverage


class LMACTDBrain(MixingBrain):
    """Keep what makes the decision, remove what does not, prefer quiet explanations."""

    required_hparams = MixingBrain.required_hparams + [
        "l_in",
        "l_out",
        "reg",
        "consistency",
        "training_crop",
        "lambda_cover",
    ]

    def stage_batch(self, batch, stage) -> tuple[torch.Tensor, torch.Tensor]:
        """Training sees one random ``training_crop`` (seconds) of the batch."""
        wavs, lens = super().stage_batch(batch, stage)
        if stage == sb.Stage.TRAIN and self.hparams.training_crop:
            wavs, lens = self.random_crop(wavs, lens)
        return wavs, lens

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
        pairs = explanation.extras.get("pairs")
        if hp.lambda_cover and pairs is not None and bool(pairs.any()):
            features = explanation.extras["features"]
            loss = loss + hp.lambda_cover * pair_coverage(explanation.mask, features, pairs)
        return loss
