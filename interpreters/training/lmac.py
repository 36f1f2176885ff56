"""Training L-MAC: λ_in·CE(kept) − λ_out·CE(removed) + λ_reg·|M| + λ_tv·TV(M), on mixtures.

With ``mix_prob`` > 0 the batch is mixed on the fly (``training.mixing``); with
``two_targets`` each mixture is explained twice, once for each clip's own decision (taken on
the clip before mixing; no stems are used), and λ_excl·mean ReLU(M_a + M_b − 1) keeps the two
masks apart. That is what makes a class-conditioned decoder keep one source and drop the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from interpreters.explainers.base import Explanation
from interpreters.training.brain import decision_cross_entropy, total_variation
from interpreters.training.mixing import MixingBrain


class LMACBrain(MixingBrain):
    """Keep what makes the class explained, remove what does not, prefer small masks."""

    required_hparams = MixingBrain.required_hparams + [
        "lambda_in",
        "lambda_out",
        "lambda_reg",
        "lambda_tv",
        "lambda_excl",
        "lambda_gain",
    ]

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
