"""Training L2I's Ψ and Θ: α·‖WH − log1p|X|‖² + β·‖H‖₁ + λ_fid·CE(Θ(H), softmax f(x)/τ),
plus, with λ_faith > 0, λ_faith·CE(f(interpretation), decision): the classifier must still hear
its decision in the components L2I keeps (a faithfulness term upstream does not have)."""

from __future__ import annotations

import speechbrain as sb
import torch

from interpreters.explainers.base import Explanation
from interpreters.training.brain import InterpreterBrain, decision_cross_entropy


class L2IBrain(InterpreterBrain):
    """Reconstruction by the dictionary, sparse activations, Θ mimicking the classifier."""

    required_hparams = InterpreterBrain.required_hparams + [
        "alpha",
        "beta",
        "lambda_fid",
        "temperature",
        "lambda_faith",
    ]

    def compute_forward(self, batch, stage):
        """While training, only Ψ and Θ run (no resynthesis, no extra classifier passes) unless
        the faithfulness term needs the classifier's view of the interpretation."""
        if stage != sb.Stage.TRAIN or self.hparams.lambda_faith > 0:
            return super().compute_forward(batch, stage)
        wavs = batch.sig.data.to(self.device)
        with torch.no_grad():
            logits, hidden = self.classifier.forward_with_hidden(wavs)
        parts = self.explainer.decompose(self.explainer.front_end.analyse(wavs), hidden)
        return parts, logits

    def compute_objectives(self, outputs, batch, stage):
        """The L2I loss while training; the shared loss-plus-metrics path otherwise."""
        if stage != sb.Stage.TRAIN or self.hparams.lambda_faith > 0:
            return super().compute_objectives(outputs, batch, stage)
        return self.l2i_loss(*outputs)

    def l2i_loss(self, parts: dict[str, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        """Reconstruction + sparsity of H + Θ's cross-entropy to the classifier's soft decision."""
        hp = self.hparams
        teacher = (logits / hp.temperature).softmax(dim=-1)
        fidelity = -(teacher * parts["theta_logits"].log_softmax(dim=-1)).sum(dim=-1).mean()
        return (
            hp.alpha * parts["reconstruction_error"].mean()
            + hp.beta * parts["activations"].abs().mean()
            + hp.lambda_fid * fidelity
        )

    def loss(self, explanation: Explanation, in_logits, out_logits) -> torch.Tensor:
        """The L2I loss, plus the faithfulness of the interpretation when λ_faith > 0."""
        loss = self.l2i_loss(explanation.extras, explanation.logits)
        if self.hparams.lambda_faith > 0:
            faith = decision_cross_entropy(in_logits, explanation.target)
            loss = loss + self.hparams.lambda_faith * faith
        return loss
