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
mismatched prompt and an empty mask does.
With ``mix_prob`` > 0 training clips are mixed with their batch neighbour (as L-MAC's): p then
comes from each source clip before mixing (r_ij the larger of the two, the in-term over both
clips' decisions), so the mixture is explained once for each source's decision."""

from __future__ import annotations

import speechbrain as sb
import torch
import torch.nn.functional as F

from interpreters.explainers.base import Explanation, classify_halves
from interpreters.training.brain import InterpreterBrain
from interpreters.training.mixing import mix_parts, partner_values


def similarity_target(
    pairs: dict[str, torch.Tensor], probabilities: torch.Tensor, silent_mismatch: bool
) -> torch.Tensor:
    """What each masked audio x prompt pair must reproduce [B, P]: the audio's similarity, or
    (``silent_mismatch``) a blend towards silence's as the prompt's zero-shot probability falls
    below the decision's (``probabilities`` [B, C], or [B, S, C] for the S clips a mixture is
    made of: the best-matched source's ratio counts)."""
    if not silent_mismatch:
        return pairs["similarity"]
    probabilities = per_source(probabilities)
    top = probabilities.amax(-1, keepdim=True)
    relative = (probabilities[..., pairs["classes"]] / top).amax(1)
    return relative * pairs["similarity"] + (1 - relative) * pairs["silence_similarity"][None]


def per_source(probabilities: torch.Tensor) -> torch.Tensor:
    """Zero-shot probabilities as [B, S, C]: one source per audio unless already given."""
    return probabilities[:, None] if probabilities.dim() == 2 else probabilities


def decision_kept_loss(pairs: dict[str, torch.Tensor], probabilities: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each source's zero-shot decision on the audio that decision's mask
    keeps, over the pairs whose prompt is that decision (0 when no decision is among them);
    ``probabilities`` [B, C] or [B, S, C], a decision shared by two sources counted once."""
    decisions = per_source(probabilities).argmax(-1)  # [B, S]
    repeated = (decisions[:, :, None] == decisions[:, None, :]).tril(-1).any(-1)  # [B, S]
    first = ~repeated
    found = (pairs["classes"][None, None] == decisions[:, :, None]) & first[:, :, None]
    rows, sources, columns = found.nonzero(as_tuple=True)
    if len(rows) == 0:
        return pairs["masked_logits"].sum() * 0
    return F.cross_entropy(pairs["masked_logits"][rows, columns], decisions[rows, sources])


class LMACZSBrain(InterpreterBrain):
    """Masked audio must reproduce the similarity of every audio x prompt pair of the batch."""

    required_hparams = InterpreterBrain.required_hparams + [
        "lambda_reg",
        "lambda_div",
        "lambda_mismatch",
        "lambda_in",
        "silent_mismatch",
        "prompts_per_batch",
        "mix_prob",
        "snr_range",
        "seed",
    ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mix_generator = torch.Generator().manual_seed(int(self.hparams.seed))

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
            wavs, sources = self.training_audio(wavs, batch.sig.lengths.to(self.device))
            pairs = self.explainer.pair_outputs(wavs, self.batch_prompts(sources.argmax(-1)))
            pairs["source_probabilities"] = sources
            return pairs, None
        explanation = self.explainer.explain_for_evaluation(wavs, batch.sig.lengths)
        return explanation, classify_halves(self.classifier, explanation)

    def training_audio(
        self, wavs: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch (mixed with ``mix_prob``) and the zero-shot probabilities of the
        clips each audio is made of [B, S, C], taken before mixing (no stems)."""
        probabilities = self.explainer.encode(wavs)[2].softmax(-1)
        if self.hparams.mix_prob <= 0:
            return wavs, per_source(probabilities)
        snr_range = tuple(self.hparams.snr_range)
        wavs, _, _, mixed = mix_parts(
            wavs, lens, snr_range, self.mix_generator, self.hparams.mix_prob
        )
        partner = partner_values(probabilities, mixed)
        return wavs, torch.stack([probabilities, partner], dim=1)

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
        probabilities = pairs.get("source_probabilities", pairs["logits"].softmax(-1)).detach()
        match = per_source(probabilities)[..., pairs["classes"]].amax(1)  # [B, P]
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
