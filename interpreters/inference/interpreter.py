"""Pretrained interpreters, SpeechBrain ``Pretrained``-style: ``from_hparams`` (a folder or hub
id written by recipes/export.py), ``interpret_batch`` (the explain() contract) and
``interpret_file`` (any soundfile format, any rate, any length).

An interpreter holds an explainer (not a Brain): the yaml's explainer with its trained parts
loaded from the export's ``<name>.ckpt`` files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from interpreters.audio import load_audio, mask_at_rate
from interpreters.checkpoints import trainable_parts
from interpreters.config import load_yaml, top_level_keys
from interpreters.errors import InterpreterError
from interpreters.evaluation.evaluator import faithfulness_scores
from interpreters.explainers.base import Explainer, Explanation, classify_halves, resolve_target
from interpreters.inference.export import AUXILIARY_YAML, INCLUDES_YAML, OVERRIDES_YAML
from interpreters.inference.legacy import explainer_of
from interpreters.models.loading import fetch_classifier
from interpreters.sources import fetch_files, load_state

MIN_SECONDS = 0.1  # shorter inputs have too few STFT frames to explain
WINDOW_BATCH = 16  # windows of a long file explained together (bounds a 10-minute file's memory)


@dataclass
class FileInterpretation:
    """A whole file explained: signals, the decision, the mask and its faithfulness."""

    path: Path
    wav: torch.Tensor  # [N] mono input at the classifier's rate
    interpretation: torch.Tensor  # [N]
    residual: torch.Tensor  # [N]
    mask: torch.Tensor  # [T, F] on the front end's grid
    compressed: torch.Tensor  # [T, F] the input's compressed magnitude (for pictures)
    probabilities: torch.Tensor  # [C] mean over windows
    target: int
    label: str
    faithfulness: dict[str, float]

    def sounds(self) -> dict[str, torch.Tensor]:
        """Input, interpretation and residual at the classifier's rate."""
        return {"input": self.wav, "interpretation": self.interpretation, "residual": self.residual}


class Interpreter:
    """A pretrained explainer and its classifier, ready to explain batches and files."""

    def __init__(self, explainer: Explainer, window_seconds: float) -> None:
        self.explainer = explainer.eval()
        self.window = max(1, round(window_seconds * self.sample_rate))

    @property
    def labels(self) -> list[str]:
        """Class names of the classifier, in output order."""
        return self.explainer.labels

    @property
    def sample_rate(self) -> int:
        """Rate every input is resampled to (the classifier's)."""
        return self.explainer.sample_rate

    @property
    def front_end(self):
        """The front end masks live on (pictures are drawn on its grid)."""
        return self.explainer.front_end

    @property
    def accepts_prompts(self) -> bool:
        """Whether targets may be free text (zero-shot interpreters)."""
        return self.explainer.accepts_prompts

    @property
    def device(self) -> torch.device:
        """Where the explainer runs."""
        return self.explainer.device

    @classmethod
    def from_hparams(
        cls, source: str, savedir: str | Path | None = None, device: str = "cpu"
    ) -> Interpreter:
        """Fetch an exported interpreter (folder or hub id) into ``savedir`` and build it."""
        device = checked_device(device)
        savedir = Path(savedir or Path("pretrained_models") / str(source).replace("/", "--"))
        files = fetch_files(
            source, [], savedir, key="source", extra=(OVERRIDES_YAML, AUXILIARY_YAML)
        )
        includes = fetch_optional(source, INCLUDES_YAML, savedir)
        names = yaml.safe_load(includes.read_text()) if includes else []
        fetch_files(source, [], savedir, key="source", extra=tuple(names or ()))
        fetch_classifier(source, savedir / "classifier", "source", "classifier")
        local = {
            "classifier_source": str(savedir / "classifier"),
            "output_folder": str(savedir),
            "save_folder": str(savedir / "save"),
        }
        auxiliary = yaml.safe_load(files[AUXILIARY_YAML].read_text()) or {}
        for key, names in auxiliary.items():  # any files: a plain save_pretrained folder too
            folder = savedir / key
            fetch_files(source, [], folder, "source", key, tuple(names), hyperparams=False)
            local[key] = str(folder)
        run_overrides = yaml.safe_load(files[OVERRIDES_YAML].read_text()) or {}
        if "classifier_kind" in top_level_keys(files["hyperparams"]):
            local["classifier_kind"] = None  # the export's classifier/ is always our own kind
        hparams = load_yaml(files["hyperparams"], {**run_overrides, **local})
        parts = trainable_parts(hparams)
        paths = fetch_files(source, list(parts), savedir, key="source")
        for name, module in parts.items():
            load_state(module, paths[name], key=f"source {source}")
        explainer = explainer_of(hparams, source).to(device)
        return cls(explainer, window_seconds(hparams))

    def check_target(self, target) -> None:
        """A one-line error for a target the interpreter cannot explain (before any work)."""
        if target is None or self.accepts_prompts:
            return
        resolve_target(target, torch.zeros(1, len(self.labels)), self.labels)
        if not self.explainer.conditioned:
            raise InterpreterError(
                f"{self.explainer.name} is not conditioned on the class: it explains only each "
                "input's decision; leave --target unset or use a class-conditioned interpreter"
            )

    def interpret_batch(
        self, wavs: torch.Tensor, lens: torch.Tensor | None = None, target=None
    ) -> Explanation:
        """Explain a batch [B, N] at the classifier's rate (the same call as ``explain``)."""
        with torch.no_grad():
            return self.explainer.explain(wavs, lens, target)

    def interpret_file(self, path: str | Path, target=None) -> FileInterpretation:
        """Read any soundfile format, mono and resampled; long files in windows, stitched.

        Without a target each window is explained as the file's decision (the mean over
        windows) when the explainer is class-conditioned, as its own decision otherwise.
        """
        wav = load_audio(path, self.sample_rate, resample=True, downmix=True, allow_silence=False)
        if len(wav) < MIN_SECONDS * self.sample_rate:
            raise InterpreterError(
                f"audio file {path} is {len(wav) / self.sample_rate:.3f} s long, too short to "
                f"explain; give at least {MIN_SECONDS} s"
            )
        windows = self.split(wav)
        weights = self.window_weights(len(wav), len(windows))
        mean = self.class_probabilities(wav)
        if target is None and self.explainer.conditioned:
            target = int(mean.argmax())
        explanation = concatenate([self.interpret_batch(w, target=target) for w in chunks(windows)])
        explained = int(mean.argmax()) if target is None else int(explanation.target[0])
        compressed = self.file_spectrum(wav, explanation)
        return FileInterpretation(
            path=Path(path),
            wav=wav,
            interpretation=explanation.interpretation.reshape(-1)[: len(wav)].cpu(),
            residual=explanation.residual.reshape(-1)[: len(wav)].cpu(),
            mask=self.file_mask(wav, explanation, compressed),
            compressed=compressed[0].cpu(),
            probabilities=mean.cpu(),
            target=explained,
            label=self.labels[explained],
            faithfulness=self.faithfulness(explanation, weights),
        )

    def class_probabilities(self, wav: torch.Tensor) -> torch.Tensor:
        """How the classifier hears a whole file [N]: class probabilities [C], the mean over its
        windows weighted by their real samples (the file's decision is its argmax)."""
        windows = self.split(wav)
        with torch.no_grad():
            logits = torch.cat(
                [self.explainer.classifier(w.to(self.device)) for w in chunks(windows)]
            )
        probabilities = logits.softmax(-1)
        weights = self.window_weights(len(wav), len(windows)).to(probabilities.device)
        return (probabilities * weights[:, None]).sum(0) / weights.sum()

    def at_own_rate(
        self, result: FileInterpretation, keep_above: bool = True
    ) -> tuple[dict[str, torch.Tensor], int]:
        """Input, interpretation and residual at the file's own rate (its mask applied to the
        original-rate signal; above the classifier's Nyquist kept or removed) and that rate."""
        import soundfile as sf

        rate = sf.info(str(result.path)).samplerate
        if rate == self.sample_rate:
            return result.sounds(), rate
        wav = load_audio(result.path, rate, downmix=True)
        with torch.no_grad():
            kept, removed = mask_at_rate(self.front_end, result.mask, wav, rate, keep_above)
        return {"input": wav, "interpretation": kept.cpu(), "residual": removed.cpu()}, rate

    def split(self, wav: torch.Tensor) -> torch.Tensor:
        """Non-overlapping windows of the training length [W, window]; short files stay whole."""
        if len(wav) <= self.window:
            return wav[None]
        pad = (-len(wav)) % self.window
        return torch.nn.functional.pad(wav, (0, pad)).reshape(-1, self.window)

    def window_weights(self, length: int, count: int) -> torch.Tensor:
        """Share of real (unpadded) samples in each window."""
        if count == 1:
            return torch.ones(1)
        filled = torch.full((count,), float(self.window))
        filled[-1] = length - self.window * (count - 1)
        return filled / self.window

    def file_spectrum(self, wav: torch.Tensor, explanation: Explanation) -> torch.Tensor:
        """The file's compressed magnitude [1, T, F]: the explanation's own for one window, else
        the whole file's (no phase: a long file's is never needed, and costs its memory)."""
        if explanation.mask.shape[0] == 1 and explanation.spectrum is not None:
            return explanation.spectrum.compressed
        return self.front_end.compressed_magnitude(wav[None].to(self.device))

    def file_mask(
        self, wav: torch.Tensor, explanation: Explanation, compressed: torch.Tensor
    ) -> torch.Tensor:
        """The mask over the whole file: the method's own for one window, else the mask that
        turns the input (its ``compressed`` magnitude) into the stitched interpretation."""
        if explanation.mask.shape[0] == 1:
            mask = self.explainer.time_frequency_mask(explanation, wav[None].to(self.device))
            return mask[0].cpu()
        interpretation = explanation.interpretation.reshape(-1)[None, : len(wav)]
        kept = self.front_end.compressed_magnitude(interpretation)
        return self.front_end.compressed_ratio(compressed, kept)[0].cpu()

    def faithfulness(self, explanation: Explanation, weights: torch.Tensor) -> dict[str, float]:
        """AI, AD, AG, FF, Fid-In of this explanation and the explained class's probability on
        the input, the interpretation and the residual (what one file's figures mean), averaged
        over windows."""
        with torch.no_grad():
            halves = [
                classify_halves(self.explainer.classifier, part)
                for part in explanation_batches(explanation)
            ]
            heard = tuple(torch.cat(side) for side in zip(*halves))
            values = faithfulness_scores(explanation, *heard)
        rows = torch.arange(len(explanation.target), device=explanation.target.device)
        for name, probabilities in (
            ("p_input", explanation.probabilities),
            ("p_interpretation", heard[0].softmax(-1)),
            ("p_residual", heard[1].softmax(-1)),
        ):
            values[name] = probabilities[rows, explanation.target]
        weights = weights.to(explanation.logits.device)
        return {k: float((v * weights).sum() / weights.sum()) for k, v in values.items()}


def chunks(windows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A long file's windows in batches of at most WINDOW_BATCH."""
    return windows.split(WINDOW_BATCH)


FIELDS = ("mask", "interpretation", "residual", "logits", "target")  # batched Explanation fields


def concatenate(parts: list[Explanation]) -> Explanation:
    """The explanations of consecutive batches as one (a single part is returned as is; the
    spectrum of several is dropped, as a long file is analysed whole again)."""
    if len(parts) == 1:
        return parts[0]
    batched = [name for name, value in parts[0].extras.items() if torch.is_tensor(value)]
    batch = len(parts[0].target)
    return Explanation(
        *(torch.cat([getattr(p, name) for p in parts]) for name in FIELDS),
        extras={
            name: torch.cat([p.extras[name] for p in parts])
            for name in batched
            if parts[0].extras[name].dim() and parts[0].extras[name].shape[0] == batch
        },
    )


def explanation_batches(explanation: Explanation) -> list[Explanation]:
    """An explanation in batches of at most WINDOW_BATCH (the parts faithfulness needs)."""
    count = len(explanation.target)
    return [
        Explanation(*(getattr(explanation, name)[i : i + WINDOW_BATCH] for name in FIELDS))
        for i in range(0, count, WINDOW_BATCH)
    ]


def checked_device(device: str) -> str:
    """``device`` if torch knows it and it is present here; otherwise one line."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise InterpreterError(
            f"--device {device!r} is not a device; use cpu or cuda[:N]"
        ) from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise InterpreterError(f"--device {device}: no CUDA device is available here; use cpu")
    return device


def window_seconds(hparams: dict) -> float:
    """The clip length the interpreter was trained on (the data section's duration)."""
    data = hparams.get("data")
    return float(data["duration"] if isinstance(data, dict) else hparams["duration"])


def fetch_optional(source: str, filename: str, savedir: Path) -> Path | None:
    """``filename`` from ``source`` when it has one (exports made before it existed do not)."""
    try:
        return fetch_files(source, [], savedir, key="source", extra=(filename,))[filename]
    except InterpreterError:
        return None
