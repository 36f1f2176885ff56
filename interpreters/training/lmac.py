"""Training L-MAC: λ_in·CE(kept) − λ_out·CE(removed) + λ_reg·|M| + λ_tv·TV(M), on mixtures.

With ``mix_prob`` > 0 the batch is mixed on the fly (``training.mixing``); with
``two_targets`` each mixture is explained twice, once for each clip's own decision (taken on
the clip before mixing; no stems are used), and λ_excl·mean ReLU(M_a + M_b − 1) keeps the two
masks apart. That is what makes a class-conditioned decoder keep one source and drop the other.
λ_cover·mean w·ReLU(1 − M_a − M_b) (w: the mixture's compressed magnitude, mean 1) asks the two
masks to cover the mixture between them, as a mixture of two clips is made of nothing else: with
exclusivity the pair becomes a partition, so a bin the decision does not need must still go to
one of the two explanations instead of neither. λ_twin·mean (1 − cos) between the linear
magnitudes a clip's explanation keeps in its two training mixtures (``disjoint_pairs: False``
puts every clip in two, with different partners; rows from ``twin_rows``): what an explanation
keeps of its partner differs between the two, what it keeps of the clip itself need not, so
with coverage the consistent partition is the one by source. It uses which mixtures share a
clip, never a clean clip's spectrum.

λ_guide > 0 is guided fine-tuning: binary cross-entropy between the mask and a target made from
the clean clip whose decision it explains. ``guide: loud`` is upstream's L-MAC FT (its bins at
or above ``guide_threshold`` of its peak, compressed); ``guide: dominant`` the bins where it is
louder than the rest of the mixture (the training mixture's ideal binary mask). Both use the
clean clips the training mixtures were made of, so results with them are reported apart.
``guide_weight: energy`` weights the BCE's bins by the mixture's compressed magnitude (uniform:
every bin alike, most of them quiet). ``in_term: keep`` charges the kept part's cross-entropy
only where it exceeds the input's, so a mask is not rewarded for making the classifier surer
than the input did (``confidence``, upstream's term, rewards it without bound).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from interpreters.config import check_choice
from interpreters.errors import InterpreterError
from interpreters.explainers.base import Explanation
from interpreters.training.brain import decision_cross_entropy, total_variation
from interpreters.training.mixing import MixingBrain, pair_coverage, unit_mean


class LMACBrain(MixingBrain):
    """Keep what makes the class explained, remove what does not, prefer small masks."""

    required_hparams = MixingBrain.required_hparams + [
        "lambda_in",
        "lambda_out",
        "lambda_reg",
        "lambda_tv",
        "lambda_excl",
        "lambda_cover",
        "lambda_twin",
        "lambda_gain",
        "lambda_guide",
        "guide",
        "guide_threshold",
        "guide_weight",
        "in_term",
    ]
    mask_only_loss = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        hparams = vars(self.hparams)  # checked before any step, not at the first loss
        check_choice(hparams, "guide", ("loud", "dominant"))
        check_choice(hparams, "guide_weight", ("uniform", "energy"))
        check_choice(hparams, "in_term", ("confidence", "keep"))
        if hparams["lambda_twin"] and (hparams["disjoint_pairs"] or hparams["correct_pairs_only"]):
            raise InterpreterError(
                "lambda_twin > 0 needs every clip in two mixtures: set disjoint_pairs: False and "
                "correct_pairs_only: False"
            )

    def loss(
        self, explanation: Explanation, in_logits: torch.Tensor, out_logits: torch.Tensor
    ) -> torch.Tensor:
        """The L-MAC objective, plus the exclusivity (and optionally coverage) of two targets'
        masks on one mixture and, optionally, a penalty on the linear energy the mask keeps."""
        hp = self.hparams
        mask, target = explanation.mask, explanation.target
        loss = (
            hp.lambda_in * self.kept_term(explanation, in_logits)
            - hp.lambda_out * decision_cross_entropy(out_logits, target)
            + hp.lambda_reg * mask.abs().mean()
        )
        if hp.lambda_tv:
            loss = loss + hp.lambda_tv * total_variation(mask)
        if hp.lambda_gain:
            loss = loss + hp.lambda_gain * self.kept_energy(explanation).mean()
        if hp.lambda_guide and "sources" in explanation.extras:  # training and validation only
            loss = loss + hp.lambda_guide * self.guidance(explanation)
        pairs = explanation.extras.get("pairs")
        if pairs is None or not bool(pairs.any()):
            return loss
        first, second = mask.chunk(2)
        if hp.lambda_excl:
            loss = loss + hp.lambda_excl * F.relu(first + second - 1)[pairs].mean()
        if hp.lambda_cover:
            compressed = explanation.spectrum.compressed
            loss = loss + hp.lambda_cover * pair_coverage(mask, compressed, pairs)
        twins = explanation.extras.get("twins")
        if hp.lambda_twin and twins is not None and bool((twins >= 0).any()):
            loss = loss + hp.lambda_twin * twin_inconsistency(
                explanation, twins, self.explainer.front_end
            )
        return loss

    def kept_term(self, explanation: Explanation, in_logits: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the kept part against the target; with ``in_term: keep`` only its
        excess over the input's own, row by row."""
        if self.hparams.in_term == "confidence":
            return decision_cross_entropy(in_logits, explanation.target)
        kept = F.cross_entropy(in_logits, explanation.target, reduction="none")
        given = F.cross_entropy(explanation.logits.detach(), explanation.target, reduction="none")
        return F.relu(kept - given).mean()

    def guidance(self, explanation: Explanation) -> torch.Tensor:
        """BCE between the mask and the guide made from each explained clip before mixing."""
        analyse = self.explainer.front_end.analyse
        source = analyse(explanation.extras["sources"]).compressed
        if self.hparams.guide == "loud":
            target = guide_target(source, self.hparams.guide_threshold)
        else:
            target = (source > analyse(explanation.extras["others"]).compressed).to(source.dtype)
        mask = explanation.mask.clamp(1e-6, 1 - 1e-6)
        if self.hparams.guide_weight == "uniform":
            return F.binary_cross_entropy(mask, target)
        return F.binary_cross_entropy(mask, target, weight=energy_weights(explanation))

    def kept_energy(self, explanation: Explanation) -> torch.Tensor:
        """Share of the input's linear energy the mask lets through, per example [B]."""
        front_end = self.explainer.front_end
        kept = kept_magnitude(explanation, front_end).square().flatten(1).sum(dim=1)
        total = front_end.expand(explanation.spectrum.compressed).square().flatten(1).sum(dim=1)
        return kept / total.clamp_min(1e-12)


def twin_inconsistency(explanation: Explanation, twins: torch.Tensor, front_end) -> torch.Tensor:
    """Mean 1 − cosine similarity between the linear magnitude each row's mask keeps and the
    one its twin row keeps (the same clip explained in another mixture); rows with twin −1 skip.
    Scale-free, since the clip sounds at a different level in each mixture."""
    rows = torch.nonzero(twins >= 0).squeeze(1)
    kept = kept_magnitude(explanation, front_end).flatten(1)
    return (1 - F.cosine_similarity(kept[rows], kept[twins[rows]], dim=1, eps=1e-8)).mean()


def kept_magnitude(explanation: Explanation, front_end) -> torch.Tensor:
    """The linear magnitude [B, T, F] the mask lets through (it acts on the compressed one)."""
    return front_end.expand(explanation.mask * explanation.spectrum.compressed)


def energy_weights(explanation: Explanation) -> torch.Tensor:
    """Bin weights ∝ the mixture's compressed magnitude, mean 1 per clip: the guide's quiet bins,
    where which source is louder is a coin toss of noise floors, count for little."""
    return unit_mean(explanation.spectrum.compressed)


def guide_target(compressed: torch.Tensor, threshold: float) -> torch.Tensor:
    """1 where a clip's compressed magnitude [B, T, F] is at least ``threshold`` of its peak."""
    peak = compressed.flatten(1).amax(dim=1).clamp_min(1e-12)
    return (compressed >= threshold * peak[:, None, None]).to(compressed.dtype)
