"""What the classifier says about one class at every hidden level (Grad-CAM's quantities), to
tell a decoder which class to explain.

For the explained class c and each hidden map A [B, C, T', F']: channel weights
w = mean over (T', F') of ∂ logit_c / ∂ A, and the class map ReLU(Σ_k w_k A_k) scaled to max 1.
They work for any classifier whose logits depend on its hidden maps (GradCAM at every depth
at once); computed with the classifier frozen, handed over detached. Where the classifier
reads a spectrogram (``feature_front_end``), the same backward pass also gives the class's
evidence at the input's own resolution, ReLU(∂ logit_c / ∂ X ⊙ X) scaled to max 1: which bins,
not which coarse cells, speak for the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from interpreters.errors import InterpreterError
from interpreters.explainers.base import Evidence, resolve_target
from interpreters.models.base import AudioClassifier, feature_front_end


@dataclass
class ClassCondition:
    """The explained classes and, per hidden level, their channel weights and class maps."""

    target: torch.Tensor  # [B]
    weights: list[torch.Tensor]  # [B, C] per level
    maps: list[torch.Tensor]  # [B, 1, T', F'] per level, in [0, 1]
    input_map: torch.Tensor | None = None  # [B, 1, T, F] in [0, 1]; None: no spectrogram input


def hidden_gradients(
    score: torch.Tensor, hidden: list[torch.Tensor], retain_graph: bool = False
) -> list[torch.Tensor]:
    """∂ score / ∂ each hidden map, in the map's own (canonical) layout.

    A map handed over in the canonical layout may be a view (a permutation) of the tensor the
    logits depend on: the gradient is taken on that tensor and viewed the same way.
    """
    bases = [h._base if h._base is not None else h for h in hidden]
    try:
        grads = torch.autograd.grad(score, bases, retain_graph=retain_graph)
    except RuntimeError:
        raise InterpreterError(
            "the classifier's logits do not depend on the hidden maps it hands over, so no "
            "class can be read off them; return maps that lie on the path to the logits"
        ) from None
    viewed = []
    for view, base, grad in zip(hidden, bases, grads):
        if grad.stride() != base.stride():
            grad = grad.contiguous()
        offset = view.storage_offset() - base.storage_offset()
        viewed.append(grad.as_strided(view.shape, view.stride(), offset))
    return viewed


def class_condition(
    classifier: AudioClassifier, wavs: torch.Tensor, resolve
) -> tuple[torch.Tensor, list[torch.Tensor], ClassCondition]:
    """(logits, detached hidden maps, condition) for explaining the classes ``resolve(logits)``
    picks (the decision, or a given target)."""
    with torch.enable_grad():
        # The classifier is frozen: its input must require grad for a graph to the hidden maps.
        features = classifier.features(wavs).detach().requires_grad_(True)
        logits, hidden = classifier.classify(features)
        target = resolve(logits.detach())
        score = logits.gather(1, target[:, None]).sum()
        reads_spectrogram = feature_front_end(classifier) is not None
        grads = hidden_gradients(score, hidden + [features] * reads_spectrogram)
    input_map = None
    if reads_spectrogram:
        input_map = unit_peak(F.relu(grads.pop() * features.detach()))
    weights, maps = [], []
    for hidden_map, grad in zip(hidden, grads):
        weight = grad.mean(dim=(2, 3)).detach()
        cam = F.relu((weight[:, :, None, None] * hidden_map.detach()).sum(dim=1, keepdim=True))
        weights.append(weight)
        maps.append(unit_peak(cam))
    hidden = [h.detach() for h in hidden]
    return logits.detach(), hidden, ClassCondition(target, weights, maps, input_map)


def unit_peak(maps: torch.Tensor) -> torch.Tensor:
    """Non-negative maps [B, ...] scaled to a maximum of 1 per clip (all-zero maps stay 0)."""
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)
    return maps / peak.view(-1, *[1] * (maps.dim() - 1))


def conditioned_evidence(
    explainer, wavs: torch.Tensor, lens: torch.Tensor | None, target
) -> Evidence:
    """The shared path's evidence plus the class condition of the target at every hidden level
    (for decoders told the class they explain)."""
    wavs = wavs.to(explainer.device)
    logits, hidden, condition = class_condition(
        explainer.classifier, wavs, lambda logits: resolve_target(target, logits, explainer.labels)
    )
    spectrum = explainer.front_end.analyse(wavs)
    return Evidence(wavs, lens, logits, hidden, condition.target, spectrum, condition)


def level_maps(
    hidden_map: torch.Tensor,
    weight: torch.Tensor,
    cam: torch.Tensor,
    use_hidden: bool = True,
    use_weighted: bool = True,
    use_cam: bool = True,
) -> torch.Tensor:
    """What one hidden level tells a decoder about the class: the map A, A ⊙ w/max|w| and the
    class map, concatenated over channels. The raw A matters: without it, a decoder of the
    class's maps alone follows the input's energy once the classifier is randomised."""
    parts = [hidden_map] if use_hidden else []
    if use_weighted:
        scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
        parts.append(hidden_map * (weight / scale)[:, :, None, None])
    if use_cam:
        parts.append(cam)
    return torch.cat(parts, dim=1)
