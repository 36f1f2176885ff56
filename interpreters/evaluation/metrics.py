"""Batched metrics for judging audio interpretations: faithfulness, mask statistics, ground truth.

Every function is pure and batched: it takes the classifier's probabilities, masks or waveforms
(never the classifier itself) and returns one value per example, shape ``[B]``, for the caller to
average, preferably with :class:`MetricAccumulator` so that means are taken over examples.
"""

import math
from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = [
    "MetricAccumulator",
    "average_drop",
    "average_gain",
    "average_increase",
    "complexity",
    "faithfulness",
    "faithfulness_on_spectra",
    "format_table",
    "ground_truth",
    "input_fidelity",
    "log_spectral_distance",
    "mask_energy_precision_recall",
    "mask_mean",
    "mask_statistics",
    "si_sdr",
    "si_sdr_improvement",
    "sparseness",
    "stem_overlap",
    "spearman_correlation",
    "structural_similarity",
]

_EPS = 1e-12  # keeps denominators positive; far below any non-degenerate probability gap
_RANGE_TOL = 1e-6  # slack on the [0, 1] bounds for rounding in softmax


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_probabilities(name: str, x: Tensor) -> None:
    """Raise ValueError unless ``x`` is a [B, C] batch of probability rows (finite, in [0, 1])."""
    if not isinstance(x, Tensor) or not torch.is_floating_point(x) or x.ndim != 2:
        raise ValueError(
            f"{name}: probabilities expected (softmax outputs) as a floating [B, C] tensor, got "
            f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}"
        )
    # Rows of a float softmax sum to 1 up to about C rounding steps.
    sum_tol = max(1e-3, x.shape[-1] * torch.finfo(x.dtype).eps)
    bad = (
        torch.isnan(x).any()
        | (x < -_RANGE_TOL).any()
        | (x > 1 + _RANGE_TOL).any()
        | ((x.sum(dim=-1) - 1).abs() > sum_tol).any()
    )
    if bool(bad):
        raise ValueError(
            f"{name}: probabilities expected (softmax outputs): values must be non-NaN, in [0, 1] "
            "and rows must sum to 1; were logits passed instead of softmax(logits)?"
        )


def _check_target(target: Tensor, batch: int, classes: int) -> None:
    """Raise ValueError unless ``target`` is a [B] integer tensor of class indices below C."""
    if not isinstance(target, Tensor) or target.dtype.is_floating_point or target.is_complex():
        raise ValueError("target: expected a [B] tensor of integer (long) class indices")
    if target.shape != (batch,):
        raise ValueError(f"target: expected shape ({batch},), got {tuple(target.shape)}")
    if batch and bool(((target < 0) | (target >= classes)).any()):
        raise ValueError(f"target: class indices must lie in [0, {classes})")


def _check_same_shape(**tensors: Tensor) -> None:
    """Raise ValueError unless all given tensors have the same shape."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes must match, got {shapes}")


def _class_probability(x: Tensor, target: Tensor) -> Tensor:
    """Probability of the explained class per example: ``x[b, target[b]]``, shape [B]."""
    return x.gather(1, target.long().unsqueeze(1)).squeeze(1)


def _validated_pq(p: Tensor, q: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Check p, q and target, then return (p_c, q_c) in at least single precision."""
    _check_probabilities("p", p)
    _check_probabilities("q", q)
    _check_same_shape(p=p, q=q)
    _check_target(target, *p.shape)
    dtype = torch.promote_types(_float_dtype(p), _float_dtype(q))
    return _class_probability(p, target).to(dtype), _class_probability(q, target).to(dtype)


def _float_dtype(x: Tensor) -> torch.dtype:
    """The dtype to compute in: the tensor's own if at least single precision, else float32."""
    if x.dtype in (torch.float32, torch.float64):
        return x.dtype
    return torch.float32


# --------------------------------------------------------------------------------------------
# Faithfulness
# --------------------------------------------------------------------------------------------


def average_increase(p: Tensor, q: Tensor, target: Tensor, tolerance: float = 0.0) -> Tensor:
    """AI = 100 · 1[q_c > p_c + tolerance]: does the masked-in input really raise the explained
    class' confidence? (A tolerance keeps round-off of the resynthesis from counting.)"""
    p_c, q_c = _validated_pq(p, q, target)
    return 100.0 * (q_c > p_c + tolerance).to(p_c.dtype)


def average_drop(p: Tensor, q: Tensor, target: Tensor) -> Tensor:
    """AD = 100 · max(0, p_c − q_c) / p_c: relative confidence lost when keeping only the mask."""
    p_c, q_c = _validated_pq(p, q, target)
    return 100.0 * (p_c - q_c).clamp_min(0) / p_c.clamp_min(_EPS)


def average_gain(p: Tensor, q: Tensor, target: Tensor, tolerance: float = 0.0) -> Tensor:
    """AG = 100 · max(0, q_c − p_c) / (1 − p_c): share of the possible confidence gain achieved;
    gains of at most ``tolerance`` count as none."""
    p_c, q_c = _validated_pq(p, q, target)
    gain = (q_c - p_c).clamp_min(0)
    gain = torch.where(gain > tolerance, gain, torch.zeros_like(gain))
    return 100.0 * gain / (1 - p_c).clamp_min(_EPS)


def faithfulness_on_spectra(p: Tensor, r: Tensor, target: Tensor) -> Tensor:
    """FF = p_c − r_c: confidence lost when the interpretation is masked out (higher = faithful)."""
    p_c, r_c = _validated_pq(p, r, target)
    return p_c - r_c


def input_fidelity(q: Tensor, target: Tensor) -> Tensor:
    """Fid-In = 1[argmax q = c] (0/1 float): whether the masked-in input keeps the decision."""
    _check_probabilities("q", q)
    _check_target(target, *q.shape)
    return (q.argmax(dim=-1) == target).to(_float_dtype(q))


def faithfulness(
    p: Tensor, q: Tensor, r: Tensor, target: Tensor, tolerance: float = 0.0
) -> dict[str, Tensor]:
    """All faithfulness metrics from p = f(x), q = f(masked-in x), r = f(masked-out x) softmaxes.

    ``target`` holds the explained classes (the classifier's own decision); each value is [B].
    ``tolerance``: the smallest rise of q_c over p_c that AI and AG count as an increase.
    """
    _check_same_shape(p=p, q=q, r=r)
    return {
        "AI": average_increase(p, q, target, tolerance),
        "AD": average_drop(p, q, target),
        "AG": average_gain(p, q, target, tolerance),
        "FF": faithfulness_on_spectra(p, r, target),
        "Fid-In": input_fidelity(q, target),
    }


# --------------------------------------------------------------------------------------------
# Mask statistics
# --------------------------------------------------------------------------------------------


def _flat_abs(mask: Tensor) -> Tensor:
    """|mask| flattened to [B, N] in at least single precision."""
    if mask.ndim < 2:
        raise ValueError(
            f"mask: expected shape [B, ...] with trailing dims, got {tuple(mask.shape)}"
        )
    return mask.flatten(1).abs().to(_float_dtype(mask))


def sparseness(mask: Tensor) -> Tensor:
    """Gini index of |mask| per example (quantus Sparseness); higher = sparser, all-zero → 0."""
    a = _flat_abs(mask).sort(dim=1).values
    n = a.shape[1]
    weights = 2 * torch.arange(1, n + 1, device=a.device, dtype=a.dtype) - n - 1
    total = a.sum(dim=1)
    gini = (a * weights).sum(dim=1) / (n * total).clamp_min(torch.finfo(a.dtype).tiny)
    return torch.where(total > 0, gini, torch.zeros_like(gini))


def complexity(mask: Tensor) -> Tensor:
    """Entropy in nats of |mask| / Σ|mask| per example (quantus Complexity); all-zero → 0."""
    a = _flat_abs(mask)
    total = a.sum(dim=1, keepdim=True)
    prob = a / total.clamp_min(torch.finfo(a.dtype).tiny)
    entropy = -torch.special.xlogy(prob, prob).sum(dim=1)
    return torch.where(total.squeeze(1) > 0, entropy, torch.zeros_like(entropy))


def mask_mean(mask: Tensor) -> Tensor:
    """Mean mask value per example: the share of the input the interpretation lets through."""
    if mask.ndim < 2:
        raise ValueError(
            f"mask: expected shape [B, ...] with trailing dims, got {tuple(mask.shape)}"
        )
    return mask.flatten(1).to(_float_dtype(mask)).mean(dim=1)


def mask_statistics(mask: Tensor) -> dict[str, Tensor]:
    """Sparseness (SPS), complexity (COMP) and mean (MM) of a [B, ...] mask, each [B]."""
    return {"SPS": sparseness(mask), "COMP": complexity(mask), "MM": mask_mean(mask)}


# --------------------------------------------------------------------------------------------
# Ground-truth metrics
# --------------------------------------------------------------------------------------------


def _valid_samples(x: Tensor, lens: Tensor | None) -> Tensor:
    """[B, T] 0/1 weights keeping the first round(lens · T) samples of each example."""
    batch, length = x.shape
    if lens is None:
        return torch.ones_like(x)
    lens = torch.as_tensor(lens, device=x.device)
    if lens.shape != (batch,):
        raise ValueError(f"lens: expected shape ({batch},), got {tuple(lens.shape)}")
    if bool(((lens <= 0) | (lens > 1)).any()):
        raise ValueError("lens: relative lengths must lie in (0, 1]")
    n_valid = torch.round(lens.to(torch.promote_types(lens.dtype, torch.float32)) * length).long()
    positions = torch.arange(length, device=x.device)
    return (positions.unsqueeze(0) < n_valid.unsqueeze(1)).to(x.dtype)


def si_sdr(
    estimate: Tensor, reference: Tensor, lens: Tensor | None = None, eps: float = 1e-8
) -> Tensor:
    """Scale-invariant SDR in dB per example (Le Roux et al. 2019) of [B, T] zero-meaned signals.

    Samples beyond round(lens · T) are ignored; ``eps`` keeps silent or perfect estimates finite.
    """
    _check_same_shape(estimate=estimate, reference=reference)
    if estimate.ndim != 2:
        raise ValueError(f"expected [B, T] waveforms, got shape {tuple(estimate.shape)}")
    dtype = torch.promote_types(_float_dtype(estimate), _float_dtype(reference))
    est, ref = estimate.to(dtype), reference.to(dtype)
    valid = _valid_samples(est, lens)
    count = valid.sum(dim=1, keepdim=True).clamp_min(1)
    est = (est - (est * valid).sum(dim=1, keepdim=True) / count) * valid
    ref = (ref - (ref * valid).sum(dim=1, keepdim=True) / count) * valid

    alpha = (est * ref).sum(dim=1, keepdim=True) / ((ref**2).sum(dim=1, keepdim=True) + eps)
    target = alpha * ref
    noise = target - est
    ratio = ((target**2).sum(dim=1) + eps) / ((noise**2).sum(dim=1) + eps)
    return 10 * torch.log10(ratio)


def si_sdr_improvement(
    estimate: Tensor, mixture: Tensor, reference: Tensor, lens: Tensor | None = None
) -> Tensor:
    """SI-SDRi in dB: SI-SDR of the estimate minus that of the unprocessed mixture, per example."""
    return si_sdr(estimate, reference, lens) - si_sdr(mixture, reference, lens)


def ground_truth(
    interpretation: Tensor, mixture: Tensor, target_stem: Tensor, lens: Tensor | None = None
) -> dict[str, Tensor]:
    """SI-SDR and SI-SDRi of a listenable interpretation against the target stem of a mixture."""
    sdr = si_sdr(interpretation, target_stem, lens)
    return {"SI-SDR": sdr, "SI-SDRi": sdr - si_sdr(mixture, target_stem, lens)}


def mask_energy_precision_recall(
    mask: Tensor, mixture_mag: Tensor, target_mag: Tensor, other_mag: Tensor
) -> tuple[Tensor, Tensor]:
    """Energy-weighted precision and recall of a [B, T, F] mask against the target-dominated bins.

    D = 1[target_mag > other_mag], E = mixture_mag²; precision = ΣMDE / ΣME, recall = ΣMDE / ΣDE;
    an empty denominator gives 0.
    """
    _check_same_shape(
        mask=mask, mixture_mag=mixture_mag, target_mag=target_mag, other_mag=other_mag
    )
    if mask.ndim < 2:
        raise ValueError(f"expected [B, T, F] tensors, got shape {tuple(mask.shape)}")
    dtype = _float_dtype(mask)
    m = mask.flatten(1).to(dtype)
    d = (target_mag > other_mag).flatten(1).to(dtype)
    e = mixture_mag.flatten(1).to(dtype) ** 2

    hit = (m * d * e).sum(dim=1)
    mask_energy = (m * e).sum(dim=1)
    target_energy = (d * e).sum(dim=1)
    tiny = torch.finfo(dtype).tiny
    zero = torch.zeros_like(hit)
    precision = torch.where(mask_energy > 0, hit / mask_energy.clamp_min(tiny), zero)
    recall = torch.where(target_energy > 0, hit / target_energy.clamp_min(tiny), zero)
    return precision, recall


def stem_overlap(
    target_mag: Tensor, other_mag: Tensor, mixture_mag: Tensor, within_db: float = 10.0
) -> dict[str, Tensor]:
    """How much two stems share, per example of [B, T, F] magnitudes: the % of mixture energy
    in bins where the stems are within ``within_db`` of each other ("TF-overlap"), and whether
    they sound at the same time at all ("time-overlap", 100 when some frame holds both within
    40 dB of their own loudest frame)."""
    _check_same_shape(target_mag=target_mag, other_mag=other_mag, mixture_mag=mixture_mag)
    dtype = _float_dtype(mixture_mag)
    tiny = torch.finfo(dtype).tiny
    a, b = target_mag.to(dtype), other_mag.to(dtype)
    close = (20 * (a.clamp_min(tiny).log10() - b.clamp_min(tiny).log10())).abs() <= within_db
    energy = mixture_mag.to(dtype).square()
    shared = (energy * close).flatten(1).sum(1) / energy.flatten(1).sum(1).clamp_min(tiny)

    def active(mag: Tensor) -> Tensor:
        frames = mag.square().sum(dim=2)
        return frames > frames.amax(dim=1, keepdim=True) * 1e-4

    together = (active(a) & active(b)).any(dim=1)
    return {"TF-overlap": 100.0 * shared, "time-overlap": 100.0 * together.to(dtype)}


def log_spectral_distance(
    estimate_mag: Tensor, reference_mag: Tensor, floor_db: float = 80.0
) -> Tensor:
    """Log-spectral distance in dB per example of [B, T, F] magnitudes: per frame the RMS over
    frequency of the dB difference, averaged over frames; both floored ``floor_db`` below the
    reference's peak, so silence is compared at that floor."""
    _check_same_shape(estimate_mag=estimate_mag, reference_mag=reference_mag)
    if estimate_mag.ndim != 3:
        raise ValueError(f"expected [B, T, F] magnitudes, got shape {tuple(estimate_mag.shape)}")
    dtype = torch.promote_types(_float_dtype(estimate_mag), _float_dtype(reference_mag))
    tiny = torch.finfo(dtype).tiny
    est_db = 20 * torch.log10(estimate_mag.to(dtype).abs().clamp_min(tiny))
    ref_db = 20 * torch.log10(reference_mag.to(dtype).abs().clamp_min(tiny))
    floor = ref_db.flatten(1).amax(dim=1)[:, None, None] - floor_db
    difference = est_db.maximum(floor) - ref_db.maximum(floor)
    return difference.pow(2).mean(dim=2).sqrt().mean(dim=1)


# --------------------------------------------------------------------------------------------
# Similarity of explanations (model-randomisation sanity check)
# --------------------------------------------------------------------------------------------


def _average_ranks(x: Tensor) -> Tensor:
    """0-based ranks of each row of [B, N], ties sharing their average rank."""
    ordered = x.sort(dim=1).values
    below = torch.searchsorted(ordered, x.contiguous(), right=False)
    up_to = torch.searchsorted(ordered, x.contiguous(), right=True)
    return (below + up_to - 1).to(_float_dtype(x)) / 2


def spearman_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation per example of two [B, ...] maps (average ranks for ties);
    0 where either map is constant."""
    _check_same_shape(a=a, b=b)
    ranks_a = _average_ranks(a.flatten(1).to(_float_dtype(a)))
    ranks_b = _average_ranks(b.flatten(1).to(_float_dtype(b)))
    ranks_a = ranks_a - ranks_a.mean(dim=1, keepdim=True)
    ranks_b = ranks_b - ranks_b.mean(dim=1, keepdim=True)
    norm = (ranks_a.square().sum(dim=1) * ranks_b.square().sum(dim=1)).sqrt()
    covariance = (ranks_a * ranks_b).sum(dim=1)
    return torch.where(norm > 0, covariance / norm.clamp_min(_EPS), torch.zeros_like(norm))


def structural_similarity(a: Tensor, b: Tensor, data_range: float = 1.0, window: int = 7) -> Tensor:
    """Mean SSIM (Wang et al. 2004) per example of two [B, H, W] maps, uniform window, valid
    positions only: (2μaμb + C1)(2σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))."""
    _check_same_shape(a=a, b=b)
    if a.ndim != 3 or min(a.shape[1:]) < window:
        raise ValueError(f"expected [B, H, W] maps of at least {window}x{window}, got {a.shape}")
    dtype = torch.promote_types(_float_dtype(a), _float_dtype(b))
    x, y = a.to(dtype).unsqueeze(1), b.to(dtype).unsqueeze(1)

    def local_mean(t: Tensor) -> Tensor:
        return torch.nn.functional.avg_pool2d(t, window, stride=1)

    mean_x, mean_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mean_x**2
    var_y = local_mean(y * y) - mean_y**2
    cov = local_mean(x * y) - mean_x * mean_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim.flatten(1).mean(dim=1)


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


class MetricAccumulator:
    """Collects per-example metric values over batches so means are over examples, not batches."""

    def __init__(self) -> None:
        self._values: dict[str, list[Tensor]] = {}

    def update(self, values: Mapping[str, Tensor]) -> None:
        """Append per-example values ([B] tensors, or scalars for one example) under their keys."""
        for key, value in values.items():
            flat = torch.as_tensor(value).detach().to("cpu", torch.float64).reshape(-1)
            self._values.setdefault(key, []).append(flat)

    def count(self, key: str) -> int:
        """Number of values recorded under ``key`` (NaNs included; 0 for an unknown key)."""
        return sum(v.numel() for v in self._values.get(key, []))

    def summary(self) -> dict[str, float]:
        """Mean per key ignoring NaNs; ``f"{key}_n_nan"`` gives how many were ignored, if any."""
        out: dict[str, float] = {}
        for key, chunks in self._values.items():
            values = torch.cat(chunks)
            is_nan = torch.isnan(values)
            kept = values[~is_nan]
            out[key] = kept.mean().item() if kept.numel() else math.nan
            n_nan = int(is_nan.sum())
            if n_nan:
                out[f"{key}_n_nan"] = float(n_nan)
        return out

    def reset(self) -> None:
        """Forget all recorded values."""
        self._values.clear()


def format_table(
    rows: Mapping[str, Mapping[str, float]], columns: list[str], name_header: str = "name"
) -> str:
    """GitHub markdown table, one row per name, numbers with 2 decimals and '–' where missing."""

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{float(value):.2f}"

    def escape(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = [
        "| " + " | ".join(escape(c) for c in [name_header, *columns]) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, values in rows.items():
        cells = [escape(name), *(cell(values.get(column)) for column in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
