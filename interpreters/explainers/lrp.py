"""Layer-wise Relevance Propagation with zennit, and the FFT virtual inspection layer.

LRP (Bach et al. 2015) runs through zennit composites (EpsilonPlus, EpsilonAlpha2Beta1) with a
canonizer that merges BatchNorm into the preceding convolution; the model code is untouched.
Relevance on a raw waveform is carried to the front end's time-frequency grid by DFT-LRP
(Vielhaben et al., Pattern Recognition 2024): a virtual inspection layer x = ISTFT(STFT(x)) is put
in front of the model and relevance is propagated through it with the epsilon-free LRP-0 rule,
which for this linear, bias-free layer conserves the total. The layer's adjoint is evaluated
with FFTs (autograd of ``torch.istft``), never with dense N x N Fourier matrices.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn as nn
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonAlpha2Beta1, EpsilonPlus, SpecialFirstLayerMapComposite
from zennit.core import Composite
from zennit.rules import Epsilon
from zennit.types import Convolution

from interpreters.audio import FrontEnd
from interpreters.errors import InterpreterError, first_line
from interpreters.explainers.attribution import Attribution
from interpreters.explainers.base import Evidence
from interpreters.models.base import AudioClassifier, to_grid

COMPOSITES = {"epsilon_plus": EpsilonPlus, "epsilon_alpha2_beta1": EpsilonAlpha2Beta1}


FIRST_LAYER_RULES = {"same": None, "epsilon": Epsilon}


RULED = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)


def check_rules(classifier: nn.Module) -> None:
    """One line naming the first layer with weights that zennit's composites have no rule for
    (LRP through it would be a plain gradient, not relevance), or a TorchScript program."""
    for name, module in classifier.named_modules():
        if isinstance(module, torch.jit.ScriptModule):
            raise InterpreterError(
                f"LRP: '{name}' is a TorchScript program, which zennit's rules cannot attach "
                "to; explain it with a gradient method or GradCAM"
            )
        leaf = not any(True for _ in module.children())
        weighted = any(True for _ in module.parameters(recurse=False))
        if leaf and weighted and not isinstance(module, RULED):
            raise InterpreterError(
                f"LRP: zennit has no rule for {type(module).__name__} (layer '{name}'); "
                "explain this classifier with a gradient method or GradCAM"
            )


def make_composite(name: str, first_layer: str = "same") -> Composite:
    """A zennit composite by name, with BatchNorm merged into the layer before it; the first
    layer may get its own rule (``epsilon`` keeps a raw waveform's signs and filters intact)."""
    if name not in COMPOSITES:
        raise InterpreterError(f"LRP composite '{name}' is unknown; use one of {list(COMPOSITES)}")
    if first_layer not in FIRST_LAYER_RULES:
        raise InterpreterError(
            f"LRP first_layer_rule '{first_layer}' is unknown; use one of {list(FIRST_LAYER_RULES)}"
        )
    composite = COMPOSITES[name](canonizers=[SequentialMergeBatchNorm()])
    rule = FIRST_LAYER_RULES[first_layer]
    return with_first_layer_rule(composite, rule() if rule else None)


def with_first_layer_rule(composite: Composite, rule=None) -> Composite:
    """``composite`` with its first convolution given ``rule`` (unchanged when None)."""
    if rule is None:
        return composite
    return SpecialFirstLayerMapComposite(
        layer_map=composite.layer_map,
        first_map=[(Convolution, rule)],
        canonizers=composite.canonizers,
    )


def lrp_relevance(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    target: torch.Tensor,
    composite: Composite,
) -> torch.Tensor:
    """Relevance of ``inputs`` (same shape) for the ``target`` logit of ``forward(inputs)``.

    ``model`` is the module whose layers get the rules; the output relevance is the target's
    logit, so on a bias-free network the input relevance sums to it.
    """
    inputs = inputs.detach().requires_grad_(True)
    with composite.context(model):
        logits = forward(inputs)
        one_hot = torch.zeros_like(logits).scatter_(1, target[:, None], 1.0)
        (relevance,) = torch.autograd.grad(logits, inputs, grad_outputs=one_hot * logits.detach())
    return relevance


def inspect_time_frequency(
    front_end: FrontEnd, wavs: torch.Tensor, sample_relevance: torch.Tensor
) -> torch.Tensor:
    """DFT-LRP: waveform relevance [B, N] -> relevance [B, T, F] of the front end's STFT bins.

    R[t, f] = Re(Y[t, f] · conj(ISTFT*(R / x)[t, f])), ISTFT* the adjoint of the inverse STFT;
    sums to Σ R over samples where ISTFT(STFT(x)) = x.
    """
    spectrum = front_end.stft(wavs.detach()).requires_grad_(True)
    per_unit = torch.where(wavs != 0, sample_relevance / wavs.where(wavs != 0, 1.0), 0.0)
    with torch.enable_grad():
        resynthesised = front_end.istft(spectrum, wavs.shape[-1])
        (adjoint,) = torch.autograd.grad(resynthesised, spectrum, grad_outputs=per_unit.detach())
    return (spectrum.detach() * adjoint.conj()).real


class LRP(Attribution):
    """LRP with a zennit ``composite`` (e.g. ``!new:zennit.composites.EpsilonPlus``); the
    first layer may get its own rule (``first_layer_rule``); waveform relevance is inspected in
    time-frequency by the FFT inspection layer."""

    def __init__(
        self,
        classifier: AudioClassifier,
        front_end: FrontEnd,
        composite: Composite,
        first_layer_rule=None,
        name: str = "",
    ) -> None:
        super().__init__(classifier, front_end, name or f"LRP {type(composite).__name__}")
        check_rules(classifier)
        self.composite = with_first_layer_rule(composite, first_layer_rule)

    def relevance(self, evidence: Evidence) -> torch.Tensor:
        """Relevance [B, T, F] on the front end's grid."""
        features = self.classifier.features(evidence.wavs).detach()
        try:
            relevance = lrp_relevance(
                self.classifier,
                lambda inputs: self.classifier.classify(inputs)[0],
                features,
                evidence.target,
                copy.deepcopy(self.composite),
            )
        except RuntimeError as err:  # e.g. a canonizer that does not fit the layers' wiring
            raise InterpreterError(
                f"LRP: zennit's rules do not run on this classifier ({first_line(err)}); "
                "explain it with a gradient method or GradCAM"
            ) from None
        if features.dim() == 3 and features.shape[1] == 1:  # [B, 1, N] waveform
            return inspect_time_frequency(self.front_end, evidence.wavs, relevance.squeeze(1))
        frames, freqs = evidence.spectrum.compressed.shape[1:]
        if relevance.dim() == 3:  # [B, T, F'] features without a channel axis
            relevance = relevance.unsqueeze(1)
        scale = self.classifier.frequency_scale
        return to_grid(relevance, frames, freqs, scale, self.sample_rate)[:, 0]
