"""On-the-fly mixtures of a training batch: what makes "keep only what the decision needs"
learnable without any stems (the classifier's own decisions on the clips are the targets)."""

from __future__ import annotations

from dataclasses import dataclass

import speechbrain as sb
import torch

from interpreters.explainers.base import classify_halves
from interpreters.training.brain import InterpreterBrain


def mix_parts(
    wavs: torch.Tensor,
    lens: torch.Tensor,
    snr_range: tuple[float, float],
    generator: torch.Generator | None = None,
    prob: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip i plus clip (i + 1) mod B at an SNR (dB, clip i over its partner) drawn uniformly
    from ``snr_range``, rescaled to clip i's peak; each clip is mixed with probability ``prob``
    (never with, or as, a silent clip).
    Returns the mixtures, clip i as it sounds in its mixture (the partner is the difference),
    the relative lengths (the longer of the two) and which were mixed."""
    batch = wavs.shape[0]
    if batch < 2:
        return wavs, wavs, lens, torch.zeros(batch, dtype=torch.bool, device=wavs.device)
    partner = wavs.roll(-1, dims=0)
    low, high = snr_range
    snr = (torch.rand(batch, generator=generator) * (high - low) + low).to(wavs.device)
    mixed = (torch.rand(batch, generator=generator) < prob).to(wavs.device)
    tiny = torch.finfo(wavs.dtype).tiny
    energy = wavs.square().sum(dim=1)
    partner_energy = partner.square().sum(dim=1)
    # a silent clip (or crop) has no level to set an SNR against: it is left unmixed
    mixed = mixed & (energy > 0) & (partner_energy > 0)
    partner_energy = partner_energy.clamp_min(tiny)
    gain = torch.where(mixed, (energy / (partner_energy * 10 ** (snr / 10))).sqrt(), 0.0)
    mixture = wavs + gain[:, None] * partner
    peak = wavs.abs().amax(dim=1) / mixture.abs().amax(dim=1).clamp_min(tiny)
    new_lens = torch.maximum(lens, partner_values(lens, mixed))
    return mixture * peak[:, None], wavs * peak[:, None], new_lens, mixed


def pair_coverage(
    masks: torch.Tensor, magnitudes: torch.Tensor, pairs: torch.Tensor
) -> torch.Tensor:
    """Magnitude-weighted share of each two-target mixture that neither of its masks keeps:
    mean w·ReLU(1 − M_a − M_b) over the ``pairs`` rows (masks stacked [a rows; b rows]; w: the
    mixture's ``magnitudes`` on the masks' grid, mean 1 per mixture, so quiet bins count little)."""
    first, second = masks.chunk(2)
    weights = unit_mean(magnitudes.chunk(2)[0])
    return (weights * torch.relu(1 - first - second))[pairs].mean()


def unit_mean(magnitudes: torch.Tensor) -> torch.Tensor:
    """Per-clip weights ∝ ``magnitudes`` [B, ...], mean 1 per clip (all-zero clips stay 0)."""
    dims = tuple(range(1, magnitudes.dim()))
    return magnitudes / magnitudes.mean(dim=dims, keepdim=True).clamp_min(1e-12)


def partner_values(values: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """Per row, the values of the clip ``mix_parts`` mixed it with (clip i + 1), or its own
    where it was not mixed; ``values`` [B, ...]."""
    where = mixed.view(-1, *[1] * (values.dim() - 1))
    return torch.where(where, values.roll(-1, dims=0), values)


@dataclass
class ExplainedMixtures:
    """A mixed batch and what to explain on it, row by row."""

    wavs: torch.Tensor
    lens: torch.Tensor
    target: torch.Tensor | None  # None: each mixture's own decision
    pairs: torch.Tensor | None  # rows that are true two-class pairs (two targets only)
    sources: torch.Tensor  # the clip whose decision a row explains, as it sounds in the mixture
    twins: torch.Tensor | None = None  # per row, the row explaining its clip in another mixture


def explained_mixtures(
    classifier,
    wavs: torch.Tensor,
    lens: torch.Tensor,
    snr_range: tuple[float, float],
    generator: torch.Generator | None,
    prob: float,
    two_targets: bool,
    disjoint_pairs: bool,
    labels: torch.Tensor | None = None,
) -> ExplainedMixtures:
    """The batch mixed on the fly and what to explain on it: with ``two_targets`` every mixture
    twice, once for each clip's own decision (taken before mixing; no stems), on the B/2
    mixtures of clips 2k and 2k + 1 with ``disjoint_pairs``. Given the clips' ``labels``, only
    mixtures whose clips are both classified correctly are kept (all, if none is)."""
    if two_targets:
        with torch.no_grad():
            decisions = classifier(wavs).argmax(dim=-1)
    wavs, own, lens, mixed = mix_parts(wavs, lens, snr_range, generator, prob)
    if not two_targets:
        return ExplainedMixtures(wavs, lens, None, None, own)
    other = partner_values(decisions, mixed)
    # where a clip was not mixed its "other" row explains the clip itself, decided the same
    partner = torch.where(mixed[:, None], wavs - own, own)
    if disjoint_pairs:  # mixtures 0, 2, 4...: clip 2k with 2k + 1, once each
        keep = slice(0, 2 * (len(wavs) // 2), 2)
        wavs, lens, mixed, own, partner = (
            wavs[keep],
            lens[keep],
            mixed[keep],
            own[keep],
            partner[keep],
        )
        decisions, other = decisions[keep], other[keep]
    if labels is not None:
        selected = slice(0, 2 * (len(labels) // 2), 2) if disjoint_pairs else slice(None)
        wavs, lens, mixed, own, partner, decisions, other = correctly_decided(
            (wavs, lens, mixed, own, partner, decisions, other),
            labels[selected],
            labels.roll(-1)[selected],
        )
    target = torch.cat([decisions, other])
    pairs = mixed & (other != decisions)
    twins = None if disjoint_pairs or labels is not None else twin_rows(pairs)
    return ExplainedMixtures(
        torch.cat([wavs, wavs]),
        torch.cat([lens, lens]),
        target,
        pairs,
        torch.cat([own, partner]),
        twins,
    )


def twin_rows(pairs: torch.Tensor) -> torch.Tensor:
    """For the 2B rows of B overlapping mixtures (mixture i: clip i with i + 1; rows [own;
    partner]), the other row explaining the same clip: clip i is row i's own and row B + i − 1's
    partner. −1 where either of its two mixtures is not a true two-class pair."""
    batch = len(pairs)
    index = torch.arange(batch, device=pairs.device)
    previous = (index - 1) % batch
    valid = pairs & pairs[previous]
    own_twin = torch.where(valid, batch + previous, -1)  # row i -> row B + i - 1
    partner_twin = torch.where(valid.roll(-1), (index + 1) % batch, -1)  # row B + i -> row i + 1
    return torch.cat([own_twin, partner_twin])


def correctly_decided(rows: tuple, labels: torch.Tensor, partner_labels: torch.Tensor) -> tuple:
    """The mixtures (each tensor of ``rows`` indexed by mixture, as ``explained_mixtures``
    orders them: ..., mixed, own, partner, decisions, other) whose own decision matches its
    label and, where mixed, whose partner's does too; every mixture when none does."""
    mixed, decisions, other = rows[2], rows[5], rows[6]
    correct = (decisions == labels) & (~mixed | (other == partner_labels))
    if not correct.any():
        return rows
    return tuple(row[correct] for row in rows)


class MixingBrain(InterpreterBrain):
    """An interpreter Brain that trains (and, with ``mix_valid``, validates) on mixtures of
    its batches, explaining each mixture for the classes ``explained_mixtures`` picks."""

    required_hparams = InterpreterBrain.required_hparams + [
        "mix_prob",
        "snr_range",
        "two_targets",
        "disjoint_pairs",
        "correct_pairs_only",
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

    def stage_batch(self, batch, stage) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's waveforms and relative lengths as this stage sees them."""
        return batch.sig.data.to(self.device), batch.sig.lengths.to(self.device)

    def batch_labels(self, batch) -> torch.Tensor:
        """The batch's class indices [B] as this stage sees its clips."""
        return batch.label_index.data[:, 0].to(self.device)

    def compute_forward(self, batch, stage):
        """Mix the batch (training, and validation with ``mix_valid``) and explain it; clean
        clips otherwise."""
        hp = self.hparams
        wavs, lens = self.stage_batch(batch, stage)
        training = stage == sb.Stage.TRAIN
        if not (training or (stage == sb.Stage.VALID and hp.mix_valid)) or hp.mix_prob <= 0:
            explanation = self.explainer.explain(wavs, lens)
            explanation.extras["sources"] = wavs
            explanation.extras["others"] = torch.zeros_like(wavs)
            return explanation, classify_halves(self.classifier, explanation)
        mixtures = explained_mixtures(
            self.classifier,
            wavs,
            lens,
            tuple(hp.snr_range),
            self.mix_generator if training else self.valid_generator,
            hp.mix_prob,
            hp.two_targets,
            hp.disjoint_pairs,
            self.batch_labels(batch) if hp.correct_pairs_only and training else None,
        )
        explanation = self.explainer.explain(mixtures.wavs, mixtures.lens, mixtures.target)
        explanation.extras["sources"] = mixtures.sources
        explanation.extras["others"] = mixtures.wavs - mixtures.sources
        if mixtures.pairs is not None:
            explanation.extras["pairs"] = mixtures.pairs
        if mixtures.twins is not None:
            explanation.extras["twins"] = mixtures.twins
        return explanation, classify_halves(self.classifier, explanation)
