"""Training L-MAC: λ_in·CE(kept) − λ_out·CE(removed) + λ_reg·|M| + λ_tv·TV(M), on mixtures.

With ``mix_prob`` > 0 the batch is mixed on the fly (``training.mixing``); with
``two_targets`` each mixture is explained twice, once for each clip's own decision (taken on
the clip before mixing; no stems are used), and λ_excl·mean ReLU(M_a + M_b − 1) keeps the two
masks apart. That is what makes a class-conditioned decoder keep one source and drop the other.
"""

from __future__ import annotations

import speechbrain as sb
import torch
import torch.nn.functional as F

from interpreters.explainers.base import Explanation, classify_halves
from interpreters.training.brain import InterpreterBrain, decision_cross_entropy, total_variation
from interpreters.training.mixing import mix_batch


class LMACBrain(InterpreterBrain):
    """Keep what makes the class explained, remove what does not, prefer small masks."""

    required_hparams = InterpreterBrain.required_hparams + [
        "lambda_in",
        "lambda_out",
        "lambda_reg",
        "lambda_tv",
        "lambda_excl",
        "lambda_gain",
        "mix_prob",
        "snr_range",
        "two_targets",
        "disjoint_pairs",
        "mix_valid",
        "seed",
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mix_generator = torch.Generator().manual_seed(int(self.hparams.seed))
        self.valid_generator = torch.Generator()

    def on_stage_start(self, stage, epoch=None) -> None:
        """As the base; validation mixtures are drawn the same way at every epoch."""
        super().on_stage_start(stage, epoch)
        self.valid_generator.manual_seed(int(self.hparams.seed) + 1)

    def compute_forward(self, batch, stage):
        """Mix the batch (training, and validation with ``mix_valid``); with ``two_targets``
        explain both clips' decisions on the same mixture, on the B/2 mixtures of clips 2k and
        2k + 1 with ``disjoint_pairs`` (B explanations a step, as without two targets)."""
        hp = self.hparams
        wavs, lens = batch.sig.data.to(self.device), batch.sig.lengths.to(self.device)
        training = stage == sb.Stage.TRAIN
        if not (training or (stage == sb.Stage.VALID and hp.mix_valid)) or hp.mix_prob <= 0:
            explanation = self.explainer.explain(wavs, lens)
            return explanation, classify_halves(self.classifier, explanation)
        generator = self.mix_generator if training else self.valid_generator
        if hp.two_targets:
            with torch.no_grad():
                decisions = self.classifier(wavs).argmax(dim=-1)
        wavs, lens, mixed = mix_batch(wavs, lens, tuple(hp.snr_range), generator, hp.mix_prob)
        target = pairs = None
        if hp.two_targets:
            other = torch.where(mixed, decisions.roll(-1), decisions)
            if hp.disjoint_pairs:  # mixtures 0, 2, 4...: clip 2k with 2k + 1, once each
                keep = slice(0, 2 * (len(wavs) // 2), 2)
                wavs, lens, mixed = wavs[keep], lens[keep], mixed[keep]
                decisions, other = decisions[keep], other[keep]
            target = torch.cat([decisions, other])
            pairs = mixed & (other != decisions)
            wavs, lens = torch.cat([wavs, wavs]), torch.cat([lens, lens])
        explanation = self.explainer.explain(wavs, lens, target)
        if pairs is not None:
            explanation.extras["pairs"] = pairs
        return explanation, classify_halves(self.classifier, explanation)

    def loss(
        self, explanation: Explanation, in_logits: torch.Tensor, out_logits: torch.Tensor
    ) -> torch.Tensor:
        """The L-MAC objective, plus the exclusivity of two targets' masks on one mixture and,
        optionally, a penalty on the linear energy the mask keeps."""
        hp = self.hparams
        mask, target = explanation.mask, explanation.target
        loss = (
            hp.lambda_in * decision_cross_entropy(in_logits, target)
            - hp.lambda_out * decision_cross_entropy(out_logits, target)
            + hp.lambda_reg * mask.abs().mean()
        )
        if hp.lambda_tv:
            loss = loss + hp.lambda_tv * total_variation(mask)
        if hp.lambda_gain:
            loss = loss + hp.lambda_gain * self.kept_energy(explanation).mean()
        pairs = explanation.extras.get("pairs")
        if hp.lambda_excl and pairs is not None and bool(pairs.any()):
            first, second = mask.chunk(2)
            loss = loss + hp.lambda_excl * F.relu(first + second - 1)[pairs].mean()
        return loss

    def kept_energy(self, explanation: Explanation) -> torch.Tensor:
        """Share of the input's linear energy the mask lets through, per example [B]."""
        front_end, compressed = self.explainer.front_end, explanation.spectrum.compressed
        kept = front_end.expand(explanation.mask * compressed).square().flatten(1).sum(dim=1)
        total = front_end.expand(compressed).square().flatten(1).sum(dim=1)
        return kept / total.clamp_min(1e-12)
