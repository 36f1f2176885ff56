"""Attribution baselines under the same ``explain()`` contract as the trained interpreters.

captum is used the way captum is meant to be: one attribution object, one ``attribute`` call;
the class (``!name:captum.attr.Saliency``, ``IntegratedGradients``, ...) and its options come
from yaml, with SmoothGrad as captum's NoiseTunnel around any of them. GradCAM weights a named
layer's maps by the target's gradient, reading the layer's declared axes. Attribution is taken
w.r.t. the classifier's input features when they are the front end's compressed magnitude;
otherwise w.r.t. the front end's compressed magnitude, resynthesised with the input phase in
front of the classifier, so every relevance lies on the front end's grid. Positive relevance,
normalised per example, becomes the mask.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn
from captum.attr import NoiseTunnel

from interpreters.audio import FrontEnd, Spectrum
from interpreters.errors import InterpreterError
from interpreters.explainers.base import Evidence, Explainer
from interpreters.explainers.conditioning import hidden_gradients
from interpreters.models.base import (
    AudioClassifier,
    canonical_map,
    feature_front_end,
    same_front_end,
    to_grid,
)


def relevance_mask(relevance: torch.Tensor) -> torch.Tensor:
    """Positive relevance [B, T, F] scaled to a max of 1 per example (all-zero stays zero)."""
    positive = relevance.detach().clamp_min(0)
    peak = positive.flatten(1).amax(dim=1).clamp_min(torch.finfo(positive.dtype).tiny)
    return positive / peak[:, None, None]


class AttributionTarget(nn.Module):
    """The function attributed: the classifier's logits given the attributed input.

    On the feature path the input is the classifier's own features; otherwise it is the front
    end's compressed magnitude, resynthesised with ``phase`` before the classifier.
    """

    def __init__(
        self, classifier: AudioClassifier, front_end: FrontEnd, length: int, on_features: bool
    ) -> None:
        super().__init__()
        self.classifier = classifier
        self.front_end = front_end
        self.length = length
        self.on_features = on_features

    def forward(self, inputs: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Logits [B, C]; ``phase`` is used only by the resynthesis path."""
        if self.on_features:
            return self.classifier.classify(inputs)[0]
        wavs = self.front_end.synthesise(Spectrum(inputs[:, 0], phase[:, 0], self.length), 1.0)
        return self.classifier(wavs)


class Attribution(Explainer):
    """A method with nothing to train: relevance for the target becomes the mask."""

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Positive relevance as the mask (``extras['relevance']``: the signed relevance);
        gradients are switched on even inside a no-grad evaluation."""
        with torch.enable_grad():
            relevance = self.relevance(evidence).detach()
        return relevance_mask(relevance), {"relevance": relevance}

    def relevance(self, evidence: Evidence) -> torch.Tensor:
        """Method-specific: relevance [B, T, F] on the front end's grid."""
        raise NotImplementedError

    def attributed(self, evidence: Evidence) -> tuple[AttributionTarget, torch.Tensor]:
        """The function to attribute and its input: the classifier's features when they are
        this front end's compressed magnitude, else that magnitude resynthesised in front."""
        on_features = same_front_end(feature_front_end(self.classifier), self.front_end)
        inputs = (
            self.classifier.features(evidence.wavs)
            if on_features
            else evidence.spectrum.compressed.unsqueeze(1)
        )
        model = AttributionTarget(
            self.classifier, self.front_end, evidence.wavs.shape[-1], on_features
        )
        return model, inputs.detach()

    def phase(self, evidence: Evidence) -> torch.Tensor:
        """The input phase, shaped like the attributed input [B, 1, T, F]."""
        return evidence.spectrum.phase.unsqueeze(1)


class CaptumAttribution(Attribution):
    """Any captum attribution class (``attribution``) called once with ``options``; with
    ``noise_tunnel`` (nt_type, nt_samples, relative_stdev) wrapped in captum's NoiseTunnel."""

    def __init__(
        self,
        classifier: AudioClassifier,
        front_end: FrontEnd,
        attribution: type,
        options: dict | None = None,
        noise_tunnel: dict | None = None,
        name: str = "",
    ) -> None:
        super().__init__(classifier, front_end, name or getattr(attribution, "__name__", ""))
        self.attribution = attribution
        self.options = dict(options or {})
        self.noise_tunnel = dict(noise_tunnel) if noise_tunnel else None

    def relevance(self, evidence: Evidence) -> torch.Tensor:
        """captum's attribution of the attributed input for the target, on the grid."""
        model, inputs = self.attributed(evidence)
        method = self.attribution(model)
        options = dict(self.options)
        if "internal_batch_size" in inspect.signature(method.attribute).parameters:
            options.setdefault("internal_batch_size", len(inputs))
        if self.noise_tunnel:
            tunnel = dict(self.noise_tunnel)
            spread = float(inputs.max() - inputs.min())
            options["stdevs"] = tunnel.pop("relative_stdev", 0.15) * spread
            options.update(tunnel)
            method = NoiseTunnel(method)
        attribution = method.attribute(
            inputs,
            target=evidence.target,
            additional_forward_args=(self.phase(evidence),),
            **options,
        )
        return attribution[:, 0]


class GradCAM(Attribution):
    """GradCAM (Selvaraju et al. 2017) on the classifier's layer named ``layer``: its maps,
    weighted by the mean gradient of the target logit per channel, summed over channels.

    ``layout`` declares the layer output's axes (see models.base.LAYOUTS); when None, the
    classifier's own declaration for that layer is used; a layer with none is a one-line error.
    ``layer: hidden.<i>`` takes the classifier's i-th hidden map instead (already in the
    canonical layout), for classifiers with no layers to hook, such as TorchScript programs.
    """

    def __init__(
        self,
        classifier: AudioClassifier,
        front_end: FrontEnd,
        layer: str,
        layout: str | None = None,
        name: str = "",
    ) -> None:
        super().__init__(classifier, front_end, name or "GradCAM")
        self.layer = layer
        self.hidden_index = hidden_index(layer, classifier)
        if self.hidden_index is None:
            named_layer(classifier, layer, "gradcam_layer")
            self.layout = layout or layer_layout(classifier, layer)

    def relevance(self, evidence: Evidence) -> torch.Tensor:
        """Signed GradCAM map on the front end's grid (the mask keeps its positive part)."""
        maps, gradients = self.maps_and_gradients(evidence)
        cam = (gradients.mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1, keepdim=True)
        frames, freqs = evidence.spectrum.compressed.shape[1:]
        scale = self.classifier.frequency_scale
        return to_grid(cam, frames, freqs, scale, self.sample_rate)[:, 0]

    def maps_and_gradients(self, evidence: Evidence) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's maps and the target logit's gradient on them, both [B, C, T', F']."""
        if self.hidden_index is not None:
            return self.hidden_map_and_gradient(evidence)
        model, inputs = self.attributed(evidence)
        logits, maps = layer_output(
            named_layer(self.classifier, self.layer, "gradcam_layer"),
            lambda: model(inputs.requires_grad_(True), self.phase(evidence)),
        )
        score = logits.gather(1, evidence.target[:, None]).sum()
        (gradients,) = torch.autograd.grad(score, maps)
        key = f"gradcam_layer '{self.layer}'"
        return canonical_map(maps, self.layout, key), canonical_map(gradients, self.layout, key)

    def hidden_map_and_gradient(self, evidence: Evidence) -> tuple[torch.Tensor, torch.Tensor]:
        """The classifier's own hidden map and the target logit's gradient on it."""
        features = self.classifier.features(evidence.wavs).detach().requires_grad_(True)
        logits, hidden = self.classifier.classify(features)
        score = logits.gather(1, evidence.target[:, None]).sum()
        view = hidden[self.hidden_index]
        return view, hidden_gradients(score, [view])[0]


def hidden_index(layer: str, classifier: AudioClassifier) -> int | None:
    """i for ``hidden.<i>`` (negative counts from the deepest), None for a layer name."""
    if not layer.startswith("hidden."):
        return None
    count = len(classifier.hidden_channels)
    try:
        index = int(layer.split(".", 1)[1])
        return range(count)[index]
    except (ValueError, IndexError):
        raise InterpreterError(
            f"gradcam_layer '{layer}': the classifier has {count} hidden maps; use hidden.0 .. "
            f"hidden.{count - 1} (or a layer name)"
        ) from None


def layer_output(layer: nn.Module, run) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``run()`` (which returns logits) and catch ``layer``'s output on the way."""
    captured = {}

    def keep(module, args, output):
        captured["out"] = output[0] if isinstance(output, (tuple, list)) else output

    hook = layer.register_forward_hook(keep)
    try:
        logits = run()
    finally:
        hook.remove()
    if "out" not in captured:
        raise InterpreterError("the GradCAM layer was not called by the classifier's forward")
    return logits, captured["out"]


def layer_layout(classifier: AudioClassifier, layer: str) -> str:
    """The layout the classifier declares for ``layer``'s output, or a one-line error."""
    layout = classifier.layer_layout(layer) if hasattr(classifier, "layer_layout") else None
    if layout is None:
        raise InterpreterError(
            f"gradcam_layer '{layer}': the classifier declares no axes for this layer; set "
            "gradcam_layout to its output's layout (CTF, CFT, TFC, FTC, CT or TC)"
        )
    return layout


def named_layer(model: nn.Module, name: str, key: str) -> nn.Module:
    """The submodule called ``name`` (e.g. 'blocks.2'); an unknown name is a one-line error
    listing every submodule, at every depth."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(names[:60]) + (f", ... ({len(names)} in all)" if len(names) > 60 else "")
        raise InterpreterError(
            f"{key} '{name}' is not a layer of the classifier; use one of: {shown}"
        ) from None
