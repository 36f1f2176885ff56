"""The one explanation contract: ``explain(wavs, lens, target) -> Explanation``.

An ``Explainer`` is a plain nn.Module holding a frozen classifier and the front end. The shared
path (the classifier's decision and hidden maps, the target, the analysis, the resynthesis of
what the mask keeps and removes) is written once here; a method supplies only its mask
(``mask``), or, for time-domain methods, its waveforms (``render``). Training lives in
``interpreters.training``; scoring in ``interpreters.evaluation``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from interpreters.audio import FrontEnd, Spectrum
from interpreters.errors import InterpreterError
from interpreters.models.base import AudioClassifier, check_sample_rate


@dataclass
class Explanation:
    """What every method returns: mask, listenable interpretation and residual, the decision."""

    mask: torch.Tensor  # [B, T, F] in [0, 1], time-frequency (or the method's own domain)
    interpretation: torch.Tensor  # [B, N] waveform of what the mask keeps
    residual: torch.Tensor  # [B, N] waveform of what it removes
    logits: torch.Tensor  # [B, C] classifier on the input
    target: torch.Tensor  # [B] class explained
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # method-specific outputs
    spectrum: Spectrum | None = None  # the analysed input (compressed magnitude and phase)

    @property
    def probabilities(self) -> torch.Tensor:
        """Classifier's softmax on the input."""
        return self.logits.softmax(dim=-1)


@dataclass
class Evidence:
    """What the shared path computed once for a batch, handed to the method."""

    wavs: torch.Tensor  # [B, N]
    lens: torch.Tensor | None
    logits: torch.Tensor  # [B, C]
    hidden: list[torch.Tensor]  # [B, C, T', F'] each
    target: torch.Tensor  # [B] class indices explained
    spectrum: Spectrum
    condition: object = None  # what else a method needs about the target (e.g. a prompt)

    def explanation(self, mask, interpretation, residual, extras=None) -> Explanation:
        """The Explanation of this batch from what a method made of it."""
        return Explanation(
            mask, interpretation, residual, self.logits, self.target, extras or {}, self.spectrum
        )


def resolve_target(target, logits: torch.Tensor, labels: list[str]) -> torch.Tensor:
    """Class indices [B] to explain: the decision when None, else names or indices given
    (a digit string such as "3" is an index, as on the command line)."""
    batch = logits.shape[0]
    if target is None:
        return logits.argmax(dim=-1)
    if isinstance(target, torch.Tensor):
        return target.to(logits.device).long().expand(batch)
    names = [target] if isinstance(target, (str, int)) else list(target)
    indices = []
    for name in names:
        if isinstance(name, str) and name not in labels and name.strip().isdigit():
            name = int(name)
        if isinstance(name, int):
            if not 0 <= name < len(labels):
                raise InterpreterError(f"target class {name} is out of range 0..{len(labels) - 1}")
            indices.append(name)
        elif name in labels:
            indices.append(labels.index(name))
        else:
            raise InterpreterError(f"unknown class '{name}'; the classifier knows {labels}")
    return torch.tensor(indices, device=logits.device).expand(batch)


class Explainer(nn.Module):
    """Explains a frozen classifier's decisions in sound; subclasses supply ``mask``.

    ``conditioned``: whether the mask depends on the class explained. An explainer that is not
    refuses a target other than the decision, so nothing is labelled as explaining a class it
    did not. ``accepts_prompts``: free-text targets (zero-shot classifiers).
    """

    conditioned = True
    accepts_prompts = False
    method_columns: list[str] = []  # method_metrics keys also shown in metrics.md

    def __init__(self, classifier: AudioClassifier, front_end: FrontEnd, name: str = "") -> None:
        super().__init__()
        check_sample_rate(classifier.sample_rate, front_end.sample_rate, "the front end")
        self.classifier = classifier.eval().requires_grad_(False)
        self.front_end = front_end
        self.name = name or type(self).__name__

    @property
    def device(self) -> torch.device:
        """Where the classifier lives (inputs are moved there)."""
        return next(self.classifier.parameters(), torch.zeros(())).device

    @property
    def labels(self) -> list[str]:
        """Class names of the explained classifier."""
        return self.classifier.labels

    @property
    def sample_rate(self) -> int:
        """Rate of every waveform in and out."""
        return self.classifier.sample_rate

    def train(self, mode: bool = True) -> Explainer:
        """Train mode for the method's own modules; the classifier stays frozen in eval mode."""
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, wavs: torch.Tensor, lens: torch.Tensor | None = None, target=None):
        """Same as ``explain`` (so the Brain's DDP wrapper can call it)."""
        return self.explain(wavs, lens, target)

    # ---- the shared path ----------------------------------------------------------------

    def explain(
        self, wavs: torch.Tensor, lens: torch.Tensor | None = None, target=None
    ) -> Explanation:
        """Explain the classifier's decision (or ``target``) on a batch of waveforms [B, N]."""
        return self.render(self.gather(wavs, lens, target))

    def gather(self, wavs: torch.Tensor, lens: torch.Tensor | None, target) -> Evidence:
        """The decision, hidden maps, target and analysis every method starts from."""
        wavs = wavs.to(self.device)
        with torch.no_grad():
            logits, hidden = self.classifier.forward_with_hidden(wavs)
        indices = resolve_target(target, logits, self.labels)
        self.check_target(indices, logits)
        spectrum = self.front_end.analyse(wavs)
        return Evidence(wavs, lens, logits, hidden, indices, spectrum)

    def check_target(self, target: torch.Tensor, logits: torch.Tensor) -> None:
        """Refuse, in one line, a class other than the decision when the mask ignores it."""
        decision = logits.argmax(dim=-1)
        if self.conditioned or bool((target == decision).all()):
            return
        i = int((target != decision).nonzero()[0, 0])
        raise InterpreterError(
            f"{self.name} is not conditioned on the class: it explains only the decision "
            f"('{self.labels[int(decision[i])]}'), not '{self.labels[int(target[i])]}'; "
            "leave target unset or use a class-conditioned explainer"
        )

    def render(self, evidence: Evidence) -> Explanation:
        """Mask -> interpretation and residual through the front end."""
        mask, extras = self.mask(evidence)
        interpretation, residual = self.front_end.listenable(evidence.spectrum, mask)
        return evidence.explanation(mask, interpretation, residual, extras)

    def mask(self, evidence: Evidence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Method-specific: a [B, T, F] mask in [0, 1] for ``evidence.target``, plus any extra
        outputs its loss or metrics need (kept in ``Explanation.extras``)."""
        raise NotImplementedError

    # ---- what evaluation asks of a method -------------------------------------------------

    def explain_for_evaluation(
        self, wavs: torch.Tensor, lens: torch.Tensor | None = None
    ) -> Explanation:
        """The decision's explanation as evaluation scores it (a method may add extras)."""
        return self.explain(wavs, lens)

    def time_frequency_mask(self, explanation: Explanation, wavs: torch.Tensor) -> torch.Tensor:
        """The explanation's mask on the front end's grid; for masks over another domain (e.g.
        a learnt encoder), the mask that turns the input into the interpretation."""
        grid = (len(wavs), self.front_end.n_frames(wavs.shape[-1]), self.front_end.n_freqs)
        if explanation.mask.shape == grid:
            return explanation.mask
        return self.front_end.ideal_mask(wavs, explanation.interpretation)

    def method_metrics(self, explanation: Explanation) -> dict[str, torch.Tensor]:
        """Method-specific per-example metrics added to the shared ones (none by default)."""
        return {}

    def extra_sounds(self, explanation: Explanation, count: int) -> list[dict[str, torch.Tensor]]:
        """Method-specific listening aids for the first ``count`` examples: per example
        {name: waveform}, written next to input / interpretation / residual."""
        return [{} for _ in range(count)]

    def with_classifier(self, classifier: AudioClassifier) -> Explainer:
        """The same explainer reading another classifier (the sanity check's randomised
        copies); this one is left untouched."""
        clone = copy.copy(self)
        clone._modules = dict(self._modules)
        clone.classifier = classifier.eval().requires_grad_(False)
        return clone


def classify_halves(
    classifier: nn.Module, explanation: Explanation
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's logits on what a listener hears: the interpretation and the residual."""
    return classifier(explanation.interpretation), classifier(explanation.residual)


def choose(options: dict, method: str):
    """``options[method]`` for the yaml's ``method`` key; an unknown name is a one-line error."""
    if method not in options:
        raise InterpreterError(
            f"yaml key 'method': '{method}' is unknown; use one of {list(options)}"
        )
    return options[method]


def build(options: dict, method: str, classifier: AudioClassifier, front_end: FrontEnd):
    """The explainer named ``method`` among yaml ``options`` (partials taking the classifier
    and the front end); only the chosen one is built."""
    return choose(options, method)(classifier=classifier, front_end=front_end)
