"""Any torch module as a classifier to explain, in a few lines: ``wrap_classifier``.

The module maps its input (the waveform, or what ``features`` makes of it) to logits. Hidden
representations come from forward hooks on named layers, each with its declared layout, or,
where hooks cannot attach (TorchScript), from a ``hidden`` callable with ``hidden_layouts``.
Declared layouts are checked on probe inputs when the module is wrapped: the rank must fit, and
where the module accepts another input length, the declared time axis must be the one that
grows with it. Exported, a wrapped classifier becomes TorchScript, so it reloads without the
user's code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from interpreters.errors import InterpreterError, first_line
from interpreters.models.base import (
    LAYOUTS,
    AudioClassifier,
    InFolder,
    canonical_map,
    check_layout,
)

PROBE_SECONDS = (1.0, 2.0)  # probe input lengths for the checks


def as_logits(output) -> torch.Tensor:
    """A module's output as a logits tensor: the tensor itself, ``.logits``, or the first item."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise InterpreterError(
        f"the classifier returned {type(output).__name__}; it must return logits [B, C] (a "
        "tensor, an object with .logits, or a tuple whose first item is the logits)"
    )


class WrappedClassifier(AudioClassifier):
    """A user's module under the classifier contract (see ``wrap_classifier``)."""

    def __init__(
        self,
        module: nn.Module,
        labels: Sequence[str],
        sample_rate: int,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
        hidden_layers: Mapping[str, str] | None = None,
        hidden: Callable[[torch.Tensor], Sequence[torch.Tensor]] | None = None,
        hidden_layouts: Sequence[str] | None = None,
        frequency_scale: str = "linear",
    ) -> None:
        super().__init__()
        self.module = module
        self.feature_fn = features
        self.labels, self.sample_rate = list(labels), int(sample_rate)
        self.frequency_scale = frequency_scale
        self.hidden_layers = {
            n: check_layout(lay, f"layout of '{n}'") for n, lay in (hidden_layers or {}).items()
        }
        self.hidden_fn = hidden
        self.hidden_layouts = [check_layout(lay, "hidden_layouts") for lay in hidden_layouts or ()]
        if hidden is not None and len(self.hidden_layouts) == 0:
            raise InterpreterError(
                "wrap_classifier: hidden given without hidden_layouts; declare one layout per map"
            )
        if hidden is not None and self.hidden_layers:
            raise InterpreterError(
                "wrap_classifier: give hidden_layers (hooks) or hidden (a callable), not both"
            )
        if self.hidden_layers and isinstance(module, torch.jit.ScriptModule):
            raise InterpreterError(
                "wrap_classifier: hooks cannot attach to a TorchScript module; pass hidden= a "
                "callable returning the maps, with hidden_layouts"
            )
        for name in self.hidden_layers:
            self.layer(name)
        self.hidden_channels = []

    def layer(self, name: str) -> nn.Module:
        """The submodule ``name``; an unknown name lists the module's layers."""
        try:
            return self.module.get_submodule(name)
        except AttributeError:
            names = ", ".join(n for n, _ in self.module.named_modules() if n)
            raise InterpreterError(
                f"hidden layer '{name}' is not a layer of the module; use one of: {names}"
            ) from None

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """The module's input: ``features(wavs)``, or the waveform itself."""
        return self.feature_fn(wavs) if self.feature_fn is not None else wavs

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the declared hidden maps in the canonical [B, C, T', F'] layout."""
        if self.hidden_fn is not None:
            logits = as_logits(self.module(features))
            maps = list(self.hidden_fn(features))
            if len(maps) != len(self.hidden_layouts):
                raise InterpreterError(
                    f"hidden returned {len(maps)} maps but {len(self.hidden_layouts)} layouts "
                    "were declared; declare one layout per map"
                )
            named = zip([f"hidden map {i}" for i in range(len(maps))], maps, self.hidden_layouts)
        else:
            logits, captured = self._hooked(features)
            named = ((n, captured[n], lay) for n, lay in self.hidden_layers.items())
        return logits, [canonical_map(t, lay, name) for name, t, lay in named]

    def _hooked(self, features: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the module with forward hooks on the hidden layers (removed afterwards, so copies
        of this classifier never write into each other's maps)."""
        captured: dict[str, torch.Tensor] = {}
        hooks = []
        try:
            for name in self.hidden_layers:
                hooks.append(self.layer(name).register_forward_hook(_keep(captured, name)))
        except (RuntimeError, AttributeError) as err:  # TorchScript modules take no hooks
            for hook in hooks:
                hook.remove()
            raise InterpreterError(
                f"hooks cannot attach to this module ({first_line(err)}); pass hidden= a callable "
                "returning the maps, with hidden_layouts"
            ) from None
        try:
            logits = as_logits(self.module(features))
        finally:
            for hook in hooks:
                hook.remove()
        missing = [name for name in self.hidden_layers if name not in captured]
        if missing:
            raise InterpreterError(
                f"hidden layer '{missing[0]}' was not called by the module's forward"
            )
        return logits, captured

    def layer_layout(self, name: str) -> str | None:
        """The declared layout of a hooked layer (prefixed ``module.`` as seen from outside)."""
        return self.hidden_layers.get(name.removeprefix("module."))

    def export_class(self) -> type:
        """Exported as TorchScript: reloads as a TorchScriptClassifier without the user's code."""
        return TorchScriptClassifier

    def export_arguments(self, folder) -> dict:
        """The traced programs written into ``folder``, and what else rebuilds them."""
        return export_torchscript(self, folder)


def _keep(captured: dict, name: str):
    """A forward hook storing the layer's output (its first item when it returns a tuple)."""

    def hook(module, args, output):
        captured[name] = output[0] if isinstance(output, (tuple, list)) else output

    return hook


def wrap_classifier(
    module: nn.Module,
    labels: Sequence[str],
    sample_rate: int,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    hidden_layers: Mapping[str, str] | None = None,
    hidden: Callable[[torch.Tensor], Sequence[torch.Tensor]] | None = None,
    hidden_layouts: Sequence[str] | None = None,
    frequency_scale: str = "linear",
) -> WrappedClassifier:
    """Wrap ``module`` (nn.Module or TorchScript; input ``features(wavs)`` or the waveform
    [B, N] at ``sample_rate``; output logits over ``labels``) so every explainer can read it.

    ``hidden_layers``: {layer name: layout} read by forward hooks, layouts among
    ``models.base.LAYOUTS`` (e.g. "CTF" for Conv2d maps over time x frequency, "CT" for Conv1d,
    "TC" for a sequence model's states). ``hidden`` + ``hidden_layouts``: the same from a
    callable on the features, where hooks cannot attach. ``frequency_scale``: how the maps'
    frequency axis is spaced ("linear" or "mel"). The declarations are checked now.
    """
    wrapped = WrappedClassifier(
        module,
        labels,
        sample_rate,
        features,
        hidden_layers,
        hidden,
        hidden_layouts,
        frequency_scale,
    ).eval()
    wrapped.requires_grad_(False)
    check_wrapped(wrapped)
    return wrapped


def check_wrapped(classifier: WrappedClassifier) -> None:
    """Probe the wrapped module: logits fit the labels, maps fit their layouts, and the declared
    time axis is the one that grows with the input (when the module takes both probe lengths)."""
    shapes = []
    for seconds in PROBE_SECONDS:
        wavs = 0.01 * torch.randn(
            1, int(seconds * classifier.sample_rate), generator=torch.Generator().manual_seed(0)
        )
        try:
            with torch.no_grad():
                logits, hidden = classifier.forward_with_hidden(wavs)
        except InterpreterError:
            raise
        except Exception as err:
            if shapes:  # a fixed-length module: the time check is skipped
                break
            rate = classifier.sample_rate
            raise InterpreterError(
                f"the classifier fails on {seconds:g} s of audio at {rate} Hz: {first_line(err)}"
            ) from None
        if logits.shape != (1, len(classifier.labels)):
            raise InterpreterError(
                f"the classifier returns logits of shape {tuple(logits.shape)} for one clip but "
                f"{len(classifier.labels)} labels were given; give one label per output"
            )
        shapes.append([tuple(h.shape) for h in hidden])
    classifier.hidden_channels = [shape[1] for shape in shapes[0]]
    if len(shapes) == 2:
        check_time_axes(classifier, *shapes)


def check_time_axes(classifier: WrappedClassifier, short: list, long: list) -> None:
    """A declared layout whose time axis stays put while another axis grows with the input's
    length is declared wrong: one line naming the map and the axis that grew."""
    names = list(classifier.hidden_layers) or [f"hidden map {i}" for i in range(len(short))]
    for name, a, b in zip(names, short, long):
        grew = [axis for axis in (1, 2, 3) if b[axis] > a[axis]]
        if 1 in grew:
            raise InterpreterError(
                f"hidden map '{name}': its channel axis grows with the input's length; the "
                "declared layout puts channels where time is (e.g. TC, not CT)"
            )
        if grew and 2 not in grew:
            raise InterpreterError(
                f"hidden map '{name}': its frequency axis grows with the input's length and its "
                "time axis does not; the declared layout swaps them (e.g. CFT, not CTF)"
            )


class _Program(nn.Module):
    """classify() as one traceable function: features -> (logits, *hidden maps)."""

    def __init__(self, classifier: AudioClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, hidden = self.classifier.classify(features)
        return (logits, *hidden)


class TorchScriptClassifier(AudioClassifier):
    """A classifier saved as TorchScript programs (what an exported wrapped classifier is):
    ``program`` maps features to (logits, *hidden maps [B, C, T', F']), ``features`` (optional)
    waveforms to features. Reloads without the code that defined the original module."""

    def __init__(
        self,
        program: str,
        labels: Sequence[str],
        sample_rate: int,
        hidden_channels: Sequence[int],
        features: str | None = None,
        frequency_scale: str = "linear",
    ) -> None:
        super().__init__()
        self.program = torch.jit.load(program, map_location="cpu")
        self.feature_program = torch.jit.load(features, map_location="cpu") if features else None
        self.labels, self.sample_rate = list(labels), int(sample_rate)
        self.hidden_channels = list(hidden_channels)
        self.frequency_scale = frequency_scale

    def features(self, wavs: torch.Tensor) -> torch.Tensor:
        """The saved feature program on the waveforms, or the waveforms themselves."""
        if self.feature_program is None:
            return wavs
        with torch.jit.optimized_execution(False):  # eager autograd: JIT's differs on complex
            return self.feature_program(wavs)

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the hidden maps the program returns."""
        with torch.jit.optimized_execution(False):
            logits, *hidden = self.program(features)
        return logits, list(hidden)

    def export_arguments(self, folder) -> dict:
        """The programs saved again into ``folder``."""
        from pathlib import Path

        self.program.save(str(Path(folder) / "classifier.pt"))
        if self.feature_program is not None:
            self.feature_program.save(str(Path(folder) / "features.pt"))
        return {
            **self.config,
            "program": InFolder("classifier.pt"),
            "features": InFolder("features.pt") if self.feature_program is not None else None,
        }


def export_torchscript(classifier: WrappedClassifier, folder) -> dict:
    """Trace a wrapped classifier into ``folder`` (classifier.pt, features.pt when its features
    are a module); the ``TorchScriptClassifier`` arguments that reload it, paths relative."""
    from pathlib import Path

    folder = Path(folder)
    wavs = 0.01 * torch.randn(1, classifier.sample_rate, generator=torch.Generator().manual_seed(0))
    arguments = {"program": InFolder("classifier.pt"), "features": None}
    with torch.no_grad():
        if classifier.feature_fn is not None:
            if not isinstance(classifier.feature_fn, nn.Module):
                raise InterpreterError(
                    "export: the classifier's features are a plain function, which cannot be "
                    "saved; pass features as an nn.Module (e.g. a torchaudio transform)"
                )
            torch.jit.trace(classifier.feature_fn, wavs).save(str(folder / "features.pt"))
            arguments["features"] = InFolder("features.pt")
        try:
            program = torch.jit.trace(
                _Program(classifier), classifier.features(wavs), check_trace=False
            )
        except Exception as err:
            raise InterpreterError(
                f"export: the classifier cannot be traced to TorchScript ({first_line(err)}); "
                f"keep the module {type(classifier.module).__module__} importable where it is used"
            ) from None
        program.save(str(folder / "classifier.pt"))
    return {
        **arguments,
        "labels": list(classifier.labels),
        "sample_rate": classifier.sample_rate,
        "hidden_channels": list(classifier.hidden_channels),
        "frequency_scale": classifier.frequency_scale,
    }


__all__ = ["LAYOUTS", "TorchScriptClassifier", "WrappedClassifier", "as_logits", "wrap_classifier"]
