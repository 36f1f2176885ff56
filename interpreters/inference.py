"""Pretrained interpreters: export a trained run, load it from a folder or hub id, explain files.

An exported folder holds the recipe yaml as written (``hyperparams.yaml``), the run's overrides,
one ``<module>.ckpt`` per trainable module, the classifier in ``classifier/``, any other source
folder the recipe reads (``<key>/``, e.g. L2I's ``nmf_source``) and a model card.
Everything is fetched through SpeechBrain, so a hub id and a local folder take the same path.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from hyperpyyaml import load_hyperpyyaml

from interpreters import metrics
from interpreters.audio import load_audio
from interpreters.brain import Explanation, InterpreterBrain
from interpreters.errors import InterpreterError
from interpreters.recipe import OVERRIDES_YAML, SOURCE_YAML
from interpreters.sources import export_classifier, fetch_files, load_state

AUXILIARY_YAML = "auxiliary_sources.yaml"  # other *_source folders shipped in the export
MIN_SECONDS = 0.1  # shorter inputs have too few STFT frames to explain


@dataclass
class FileInterpretation:
    """A whole file explained: signals, the decision, the mask and its faithfulness."""

    path: Path
    wav: torch.Tensor  # [N] mono input at the classifier's rate
    interpretation: torch.Tensor  # [N]
    residual: torch.Tensor  # [N]
    mask: torch.Tensor  # [T, F] on the front end's grid
    probabilities: torch.Tensor  # [C] mean over windows
    target: int
    label: str
    faithfulness: dict[str, float]


def export_interpreter(run_folder: str | Path, out_folder: str | Path) -> Path:
    """Write a self-contained pretrained folder from a trained run's best checkpoint."""
    run, out = Path(run_folder), Path(out_folder)
    if not (run / SOURCE_YAML).is_file():
        raise InterpreterError(
            f"run folder {run} has no {SOURCE_YAML}; pass --run the output_folder of a run "
            "trained with recipes/train.py"
        )
    overrides = yaml.safe_load((run / OVERRIDES_YAML).read_text()) or {}
    with open(run / SOURCE_YAML) as stream:
        hparams = load_hyperpyyaml(stream, {**overrides, "output_folder": str(run)})
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = hparams["checkpointer"].find_checkpoint(min_key="loss")
    if hparams["modules"] and checkpoint is None:
        raise InterpreterError(f"run folder {run} has no checkpoint yet; train it first")
    for name in hparams["modules"]:
        shutil.copyfile(checkpoint.paramfiles[name], out / f"{name}.ckpt")
    export_classifier(hparams["classifier"], out / "classifier")
    shutil.copyfile(out / "classifier" / "label_encoder.txt", out / "label_encoder.txt")
    shutil.copyfile(run / SOURCE_YAML, out / "hyperparams.yaml")
    (out / OVERRIDES_YAML).write_text(yaml.safe_dump(overrides, sort_keys=True))
    (out / AUXILIARY_YAML).write_text(yaml.safe_dump(copy_auxiliary_sources(hparams, out)))
    (out / "README.md").write_text(model_card(hparams, run))
    return out


def copy_auxiliary_sources(hparams: dict, out: Path) -> dict[str, list[str]]:
    """Copy the local folders of other ``*_source`` keys (e.g. L2I's NMF dictionary) into the
    export, so it stays self-contained; returns {key: files copied}."""
    copied = {}
    for key, value in hparams.items():
        if not key.endswith("_source") or key == "classifier_source":
            continue
        folder = Path(str(value))
        if not folder.is_dir():
            continue  # a hub id: fetched from the hub as in training
        files = sorted(p.name for p in folder.iterdir() if p.is_file())
        (out / key).mkdir(exist_ok=True)
        for name in files:
            shutil.copyfile(folder / name, out / key / name)
        copied[key] = files
    return copied


def model_card(hparams: dict, run: Path) -> str:
    """A short README for the hub: what it explains, how to load it, its measured metrics."""
    table = (run / "metrics.md").read_text() if (run / "metrics.md").is_file() else "(none)"
    return (
        f"# {hparams['method_name']} interpreter\n\n"
        f"Explains a classifier of {len(hparams['classifier'].labels)} classes "
        f"({', '.join(hparams['classifier'].labels)}) in sound: a mask, a listenable "
        "interpretation and its residual.\n\n"
        "```python\nfrom interpreters.inference import Interpreter\n"
        "interpreter = Interpreter.from_hparams(source='<this folder or repo id>')\n"
        "result = interpreter.interpret_file('clip.wav')\n```\n\n"
        "Command line: `python recipes/interpret.py --source <this> clip.wav --out out/`\n\n"
        f"## Metrics of the exported run ({run.name})\n\n{table}\n"
    )


class Interpreter:
    """A pretrained interpreter and its classifier, ready to explain batches and files."""

    def __init__(self, brain: InterpreterBrain, window_seconds: float) -> None:
        self.brain = brain
        self.window = max(1, round(window_seconds * self.sample_rate))

    @property
    def labels(self) -> list[str]:
        """Class names of the classifier, in output order."""
        return self.brain.classifier.labels

    @property
    def sample_rate(self) -> int:
        """Rate every input is resampled to."""
        return self.brain.classifier.sample_rate

    @classmethod
    def from_hparams(
        cls, source: str, savedir: str | Path | None = None, device: str = "cpu"
    ) -> Interpreter:
        """Fetch an exported interpreter (folder or hub id) into ``savedir`` and build it."""
        savedir = Path(savedir or Path("pretrained_models") / str(source).replace("/", "--"))
        files = fetch_files(
            source, [], savedir, key="source", extra=(OVERRIDES_YAML, AUXILIARY_YAML)
        )
        fetch_files(source, ["classifier"], savedir / "classifier", "source", "classifier")
        run_overrides = yaml.safe_load(files[OVERRIDES_YAML].read_text()) or {}
        local = {
            "classifier_source": str(savedir / "classifier"),
            "output_folder": str(savedir),
            "save_folder": str(savedir / "save"),
        }
        auxiliary = yaml.safe_load(files[AUXILIARY_YAML].read_text()) or {}
        for key, names in auxiliary.items():
            extra = tuple(n for n in names if n != "hyperparams.yaml")
            fetch_files(source, [], savedir / key, key="source", subfolder=key, extra=extra)
            local[key] = str(savedir / key)
        with open(files["hyperparams"]) as stream:
            hparams = load_hyperpyyaml(stream, {**run_overrides, **local})
        names = list(hparams["modules"])
        paths = fetch_files(source, names, savedir, key="source")
        for name in names:
            load_state(hparams["modules"][name], paths[name], key=f"source {source}")
        brain = hparams["brain_class"](
            modules=hparams["modules"], hparams=hparams, run_opts={"device": device}
        )
        brain.modules.eval()
        return cls(brain, hparams["duration"])

    def interpret_batch(
        self, wavs: torch.Tensor, lens: torch.Tensor | None = None, target=None
    ) -> Explanation:
        """Explain a batch [B, N] at the classifier's rate (the same call as ``brain.explain``)."""
        with torch.no_grad():
            return self.brain.explain(wavs, lens, target)

    def interpret_file(self, path: str | Path, target=None) -> FileInterpretation:
        """Read any soundfile format, mono and resampled; long files in windows, stitched."""
        wav = load_audio(path, self.sample_rate, resample=True, downmix=True, allow_silence=False)
        if len(wav) < MIN_SECONDS * self.sample_rate:
            raise InterpreterError(
                f"audio file {path} is {len(wav) / self.sample_rate:.3f} s long, too short to "
                f"explain; give at least {MIN_SECONDS} s"
            )
        windows = self.split(wav)
        with torch.no_grad():
            probabilities = self.brain.classifier(windows.to(self.brain.device)).softmax(-1)
        weights = self.window_weights(len(wav), len(windows)).to(probabilities.device)
        mean = (probabilities * weights[:, None]).sum(0) / weights.sum()
        decided = int(mean.argmax()) if target is None else None
        explanation = self.interpret_batch(windows, target=decided if target is None else target)
        return FileInterpretation(
            path=Path(path),
            wav=wav,
            interpretation=explanation.interpretation.reshape(-1)[: len(wav)].cpu(),
            residual=explanation.residual.reshape(-1)[: len(wav)].cpu(),
            mask=self.file_mask(wav, explanation),
            probabilities=mean.cpu(),
            target=int(explanation.target[0]),
            label=self.labels[int(explanation.target[0])],
            faithfulness=self.faithfulness(explanation, weights),
        )

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

    def file_mask(self, wav: torch.Tensor, explanation: Explanation) -> torch.Tensor:
        """The mask over the whole file: the method's own for one window, else the mask that
        turns the input into the stitched interpretation."""
        device = self.brain.device
        if explanation.mask.shape[0] == 1:
            mask = self.brain.time_frequency_mask(explanation, wav[None].to(device))
            return mask[0].cpu()
        interpretation = explanation.interpretation.reshape(-1)[: len(wav)]
        return self.brain.front_end.ideal_mask(wav[None].to(device), interpretation[None])[0].cpu()

    def faithfulness(self, explanation: Explanation, weights: torch.Tensor) -> dict[str, float]:
        """AI, AD, AG, FF, Fid-In of this explanation, averaged over windows."""
        with torch.no_grad():
            values = metrics.faithfulness(
                explanation.probabilities,
                self.brain.classifier(explanation.interpretation).softmax(-1),
                self.brain.classifier(explanation.residual).softmax(-1),
                explanation.target,
            )
        weights = weights.to(explanation.logits.device)
        return {k: float((v * weights).sum() / weights.sum()) for k, v in values.items()}
