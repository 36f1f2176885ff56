"""Attribution baselines under the same ``explain()`` contract as the trained interpreters.

Each baseline is a thin adapter on captum (one attribution object, one ``attribute`` call):
Saliency, Integrated Gradients, SmoothGrad (NoiseTunnel on Saliency) and GradCAM. Attribution is
taken w.r.t. the classifier's input features when they are a time-frequency image; for a
raw-waveform classifier, w.r.t. the front end's compressed magnitude of a resynthesis placed
before the model. Positive relevance, normalised per example, becomes the mask.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency

from interpreters.audio import FrontEnd, Spectrum
from interpreters.brain import Explanation, InterpreterBrain, resolve_target
from interpreters.classifiers.base import AudioClassifier
from interpreters.errors import InterpreterError


def choose(options: dict, method: str):
    """``options[method]`` for the yaml's ``method`` key; an unknown name is a one-line error."""
    if method not in options:
        raise InterpreterError(
            f"yaml key 'method': '{method}' is unknown; use one of {list(options)}"
        )
    return options[method]


def relevance_mask(relevance: torch.Tensor) -> torch.Tensor:
    """Positive relevance [B, T, F] scaled to a max of 1 per example (all-zero stays zero)."""
    positive = relevance.detach().clamp_min(0)
    peak = positive.flatten(1).amax(dim=1).clamp_min(torch.finfo(positive.dtype).tiny)
    return positive / peak[:, None, None]


def to_front_end_grid(relevance: torch.Tensor, frames: int, freqs: int) -> torch.Tensor:
    """Relevance on a classifier's grid -> [B, T, F] on the front end's: a [B, 1, T', F'] map is
    resized bilinearly, a [B, 1, T'] sequence linearly over time and spread over frequency."""
    if relevance.dim() == 3:
        over_time = F.interpolate(relevance, size=frames, mode="linear", align_corners=False)
        return over_time.squeeze(1)[:, :, None].expand(-1, -1, freqs)
    if relevance.shape[-2:] == (frames, freqs):
        return relevance.squeeze(1)
    resized = F.interpolate(relevance, size=(frames, freqs), mode="bilinear", align_corners=False)
    return resized.squeeze(1)


class AttributionTarget(nn.Module):
    """The function attributed: logits of the classifier's network given the attributed input.

    For a time-frequency classifier the input is its own features; for a waveform classifier it
    is the front end's compressed magnitude, resynthesised with ``phase`` before the model.
    """

    def __init__(self, classifier: AudioClassifier, front_end: FrontEnd, length: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.front_end = front_end
        self.length = length

    def forward(self, inputs: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Logits [B, C]; ``phase`` is used only by the resynthesis of a waveform classifier."""
        if inputs.dim() == 4:
            return self.classifier.classify(inputs)[0]
        wavs = self.front_end.synthesise(Spectrum(inputs, phase, self.length), 1.0)
        return self.classifier(wavs)


class AttributionBrain(InterpreterBrain):
    """A method with nothing to train: relevance for the target becomes the mask."""

    trainable = False

    def explain(self, wavs: torch.Tensor, lens: torch.Tensor | None = None, target=None):
        """Relevance on the front end's grid (``extras['relevance']``) and its positive part as
        the mask; gradients are switched on even inside SpeechBrain's no-grad evaluation."""
        wavs = wavs.to(self.device)
        with torch.no_grad():
            logits = self.classifier(wavs)
        target = resolve_target(target, logits, self.classifier.labels)
        spectrum = self.front_end.analyse(wavs)
        with torch.enable_grad():
            relevance = self.relevance(wavs, spectrum, target).detach()
        mask = relevance_mask(relevance)
        interpretation, residual = self.front_end.listenable(spectrum, mask)
        extras = {"relevance": relevance}
        return Explanation(mask, interpretation, residual, logits, target, extras)

    def relevance(self, wavs: torch.Tensor, spectrum: Spectrum, target: torch.Tensor):
        """Method-specific: relevance [B, T, F] on the front end's grid."""
        inputs = self.classifier.features(wavs).detach()
        if inputs.dim() != 4:  # waveform classifier: attribute the resynthesised magnitude
            inputs = spectrum.compressed.detach()
        model = AttributionTarget(self.classifier, self.front_end, wavs.shape[-1])
        attribution = self.attribute(model, inputs, target, spectrum.phase)
        if attribution.shape == inputs.shape and inputs.dim() == 3:  # on the [B, T, F] grid
            attribution = attribution.unsqueeze(1)
        frames, freqs = spectrum.compressed.shape[1:]
        return to_front_end_grid(attribution, frames, freqs)

    def attribute(self, model, inputs, target, phase) -> torch.Tensor:
        """Method-specific: captum attribution of ``inputs`` for ``target``."""
        raise NotImplementedError

    def interpreter_loss(self, explanation: Explanation, in_logits, out_logits) -> torch.Tensor:
        """Nothing is trained: a zero loss keeps SpeechBrain's evaluation loop unchanged."""
        return torch.zeros((), device=self.device)


class SaliencyBrain(AttributionBrain):
    """Saliency (Simonyan et al. 2014): |∂ logit / ∂ input|."""

    def attribute(self, model, inputs, target, phase):
        """captum Saliency, absolute gradients."""
        return Saliency(model).attribute(
            inputs, target=target, abs=True, additional_forward_args=(phase,)
        )


class IntegratedGradientsBrain(AttributionBrain):
    """Integrated Gradients (Sundararajan et al. 2017) from a silent (all-zero) baseline."""

    required_hparams = InterpreterBrain.required_hparams + ["n_steps"]

    def attribute(self, model, inputs, target, phase):
        """captum IntegratedGradients with ``n_steps`` Riemann steps."""
        return IntegratedGradients(model).attribute(
            inputs,
            baselines=torch.zeros_like(inputs),
            target=target,
            n_steps=self.hparams.n_steps,
            additional_forward_args=(phase,),
            internal_batch_size=len(inputs),
        )


class SmoothGradBrain(AttributionBrain):
    """SmoothGrad (Smilkov et al. 2017): saliency averaged over noisy copies of the input."""

    required_hparams = InterpreterBrain.required_hparams + ["n_samples", "noise_std"]

    def attribute(self, model, inputs, target, phase):
        """captum NoiseTunnel('smoothgrad') on Saliency; noise std relative to the input's range."""
        stdevs = self.hparams.noise_std * float(inputs.max() - inputs.min())
        return NoiseTunnel(Saliency(model)).attribute(
            inputs,
            nt_type="smoothgrad",
            nt_samples=self.hparams.n_samples,
            stdevs=stdevs,
            target=target,
            abs=True,
            additional_forward_args=(phase,),
        )


def named_layer(model: nn.Module, name: str, key: str) -> nn.Module:
    """The submodule called ``name`` (e.g. 'blocks.2'); an unknown name is a one-line error."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n and n.count(".") <= 1]
        raise InterpreterError(
            f"{key} '{name}' is not a layer of the classifier; use one of {names}"
        ) from None


class GradCAMBrain(AttributionBrain):
    """GradCAM (Selvaraju et al. 2017) on the classifier layer named by ``gradcam_layer``."""

    required_hparams = InterpreterBrain.required_hparams + ["gradcam_layer"]

    def attribute(self, model, inputs, target, phase):
        """captum LayerGradCam as [B, 1, T', F'] or [B, 1, T'] for 1D layers (signed; the mask
        keeps the positive part, as GradCAM's ReLU does)."""
        layer = named_layer(model.classifier, self.hparams.gradcam_layer, "gradcam_layer")
        return LayerGradCam(model, layer).attribute(
            inputs, target=target, additional_forward_args=(phase,)
        )
