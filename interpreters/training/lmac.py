"""Training L-MAC: λ_in·CE(kept) − λ_out·CE(removed) + λ_reg·|M| + λ_tv·TV(M)."""

from __future__ import annotations

import torch

from interpreters.explainers.base import Explanation
from interpreters.training.brain import InterpreterBrain, decision_cross_entropy, total_variation


class LMACBrain(InterpreterBrain):
    """Keep what makes the decision, remove what does not, prefer small smooth masks."""

    required_hparams = InterpreterBrain.required_hparams + [
        "lambda_in",
        "lambda_out",
        "lambda_reg",
        "lambda_tv",
    ]

    def loss(
        self, explanation: Explanation, in_logits: torch.Tensor, out_logits: torch.Tensor
    ) -> torch.Tensor:
        """The L-MAC objective on the classifier's view of both halves."""
        hp = self.hparams
        target = explanation.target
        return (
            hp.lambda_in * decision_cross_entropy(in_logits, target)
            - hp.lambda_out * decision_cross_entropy(out_logits, target)
            + hp.lambda_reg * explanation.mask.abs().mean()
            + hp.lambda_tv * total_variation(explanation.mask)
        )
