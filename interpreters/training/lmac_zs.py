"""Training LMAC-ZS on every audio x prompt pair of a batch:
L = mean (t_ij − ŝ_ij)² + λ_reg·mean(M) + λ_div·mean_{i≠i'} cos(M_ij, M_i'j)
    + λ_mis·mean((1 − p_ij)·M_ij), p_ij the zero-shot probability of class j for audio i: a mask
is penalised in proportion to how little its audio matches the prompt;
    + λ_in·CE(zero-shot logits of X ⊙ M_ic, c) over the pairs of each clip's decision c: what the
decision's mask keeps must still be classified as c among every class prompt (L-MAC's in-term),
which the similarity term alone does not ask.
The target t_ij is the audio's similarity s_ij; with ``silent_mismatch`` it moves towards the
similarity of silence s0_j as the prompt matches less, t_ij = r_ij·s_ij + (1 − r_ij)·s0_j with
r_ij = p_ij / max_k p_ik (1 for the decision), so keeping everything no longer reproduces a
mismatched prompt and an empty mask does."""

from __future__ import annotations

import speechbrain as sb
import torch
import torch.nn.functional as F

from interpreters.explainers.base import Explanation, classify_halves
from interpreters.training.brain import InterpreterBrain


def similarity_target(
    pairs: dict[str, torch.Tensor], probabilities: torch.Tensor, silent_mismatch: bool
) -> torch.Tensor:
    """What each masked audio x prompt pair must reproduce [B, P]: the audio's similarity, or
    (``silent_mismatch``) a blend towards silence's as the prompt's zero-shot probability
    (``probabilities`` [B, C], every class) falls below the decision's."""
    if not silent_mismatch:
        return pairs["similarity"]
    top = probabilities.amax(-1, keepdim=True)
    relative = probabilities[:, pairs["classes"]] / top
    return relative * pairs["similarity"] + (1 - relative) * pairs["silence_similarity"][None]


def decision_kept_loss(pairs: dict[str, torch.Tensor], probabilities: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each clip's zero-shot decision on the audio its decision's mask keeps,
    over the pairs whose prompt is that decision (0 when no clip's decision is among them)."""
    decisions = probabilities.argmax(-1)  # [B]
    rows, columns = (pairs["classes"][None] == decisions[:, None]).nonzero(as_tuple=True)
    if len(rows) == 0:
        return pairs["masked_logits"].sum() * 0
    return F.cross_entropy(pairs["masked_logits"][rows, columns], decisions[rows])


class LMACZSBrain(InterpreterBrain):
    """Masked audio must reproduce the similarity of every audio x prompt pair of the batch."""

    required_hparams = InterpreterBrain.required_hparams + [
        "lambda_reg",
        "lambda_div",
        "lambda_mismatch",
        "lambda_in",
        "silent_mismatch",
        "prompts_per_batch",
    ]

    def batch_prompts(self, decisions: torch.Tensor) -> torch.Tensor:
        """Class indices whose prompts train this batch: ``prompts_per_batch`` of them, the
        batch's decisions first (random ones if more), then random other classes."""
        n_classes = self.classifier.n_classes
        wanted = min(self.hparams.prompts_per_batch or n_classes, n_classes)
        device = decisions.device
        chosen = decisions.unique()
        chosen = chosen[torch.randperm(len(chosen), device=device)][:wanted]
        rest = torch.ones(n_classes, dtype=torch.bool, device=device)
        rest[chosen] = False
        others = rest.nonzero()[:, 0]
        others = others[torch.randperm(len(others), device=device)][: wanted - len(chosen)]
        return torch.cat([chosen, others]).sort().values

    def compute_forward(self, batch, stage):
        """Pairs for the loss while training; otherwise the evaluation's explanation (every
        class prompt's mask; the decision's one scored)."""
        wavs = batch.sig.data.to(self.device)
        if stage == sb.Stage.TRAIN:
            decisions = self.explainer.encode(wavs)[2].argmax(-1)
            return self.explainer.pair_outputs(wavs, self.batch_prompts(decisions)), None
        explanation = self.explainer.explain_for_evaluation(wavs, batch.sig.lengths)
        return explanation, classify_halves(self.classifier, explanation)

    def compute_objectives(self, outputs, batch, stage):
        """The pair loss while training; the shared loss-plus-metrics path otherwise."""
        if stage == sb.Stage.TRAIN:
            return self.pair_loss(outputs[0])
        return super().compute_objectives(outputs, batch, stage)

    def loss(self, explanation: Explanation, in_logits, out_logits) -> torch.Tensor:
        """The pair loss of an evaluation explanation (which keeps every prompt's mask)."""
        extras = explanation.extras
        return self.pair_loss(
            {
                "masks": extras["pair_masks"],
                "similarity": extras["pair_similarity"],
                "masked_similarity": extras["pair_masked_similarity"],
                "masked_logits": extras["pair_masked_logits"],
                "silence_similarity": extras["pair_silence_similarity"],
                "logits": extras["pair_logits"],
                "classes": torch.arange(
                    extras["pair_logits"].shape[-1], device=extras["pair_logits"].device
                ),
            }
        )

    def pair_loss(self, pairs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Similarity reproduction + λ_reg·mean mask + λ_div·mean cosine between prompts' masks
        + λ_mis·mean mask weighted by how little the audio matches each prompt + λ_in·the
        decision kept by its own mask."""
        masks = pairs["masks"]
        probabilities = pairs["logits"].softmax(-1).detach()  # [B, C]
        match = probabilities[:, pairs["classes"]]  # [B, P]
        target = similarity_target(pairs, probabilities, self.hparams.silent_mismatch)
        fit = (target - pairs["masked_similarity"]).square().mean()
        loss = fit + self.hparams.lambda_reg * masks.mean()
        if self.hparams.lambda_mismatch > 0:
            loss = (
                loss
                + self.hparams.lambda_mismatch * ((1 - match) * masks.flatten(2).mean(-1)).mean()
            )
        if self.hparams.lambda_in > 0:
            loss = loss + self.hparams.lambda_in * decision_kept_loss(pairs, probabilities)
        prompts = masks.shape[1]
        if prompts > 1 and self.hparams.lambda_div > 0:
            unit = F.normalize(masks.flatten(2), dim=-1)
            gram = unit @ unit.transpose(1, 2)  # [B, P, P]
            off_diagonal = gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)
            loss = (
                loss + self.hparams.lambda_div * (off_diagonal / (prompts * (prompts - 1))).mean()
            )
        return loss
