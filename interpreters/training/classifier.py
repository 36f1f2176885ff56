"""ClassifierBrain: trains the classifiers we interpret and exports them as pretrained folders."""

from __future__ import annotations

from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import if_main_process

from interpreters.evaluation.tables import write_metrics
from interpreters.models.loading import export_classifier
from interpreters.training.brain import Brain
from interpreters.training.mixing import mix_parts, partner_values


def random_gain_and_shift(wavs: torch.Tensor, max_gain_db: float) -> torch.Tensor:
    """Cheap augmentation: a random gain per clip and a random circular time shift."""
    batch, length = wavs.shape
    gain_db = (torch.rand(batch, 1, device=wavs.device) * 2 - 1) * max_gain_db
    shifts = torch.randint(0, length, (batch, 1), device=wavs.device)
    index = (torch.arange(length, device=wavs.device) + shifts) % length
    return torch.gather(wavs, 1, index) * 10 ** (gain_db / 20)


def shared_targets(labels: torch.Tensor, mixed: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class probabilities [B, C] for the batch as ``mix_parts`` mixes it: clip i's label, or,
    where clip i was mixed with clip i + 1, half each (both sources are present)."""
    own = F.one_hot(labels, n_classes).float()
    share = torch.where(mixed, 0.5, 1.0)[:, None]
    return share * own + (1 - share) * partner_values(own, mixed)


class ClassifierBrain(Brain):
    """Cross-entropy training; best checkpoint by validation accuracy; export to pretrained/.

    With ``mix_prob`` > 0 a training clip is mixed with its batch neighbour (``snr_range``) and
    the target shares the two labels, so that a decision on a mixture rests on each source's
    own evidence; validation and test stay on clean clips."""

    checkpoint_keys = {"max_keys": ["accuracy"]}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mix_prob = float(getattr(self.hparams, "mix_prob", 0.0))
        if self.mix_prob > 0:
            seed = int(getattr(self.hparams, "seed", 0))
            self.mix_generator = torch.Generator().manual_seed(seed)

    def compute_forward(self, batch, stage):
        """Waveforms -> (logits, targets): class indices, or class probabilities [B, C] where
        the training batch is mixed; augmented and mixed while training."""
        wavs = batch.sig.data.to(self.device)
        labels = batch.label_index.data[:, 0].to(self.device)
        if stage != sb.Stage.TRAIN:
            return self.modules.classifier(wavs), labels
        if self.hparams.augment_gain_db > 0:
            wavs = random_gain_and_shift(wavs, self.hparams.augment_gain_db)
        if self.mix_prob <= 0:
            return self.modules.classifier(wavs), labels
        lens = batch.sig.lengths.to(self.device)
        snr_range = tuple(self.hparams.snr_range)
        wavs, _, _, mixed = mix_parts(wavs, lens, snr_range, self.mix_generator, self.mix_prob)
        logits = self.modules.classifier(wavs)
        return logits, shared_targets(labels, mixed, logits.shape[-1])

    def compute_objectives(self, predictions, batch, stage):
        """Cross-entropy (F.cross_entropy takes indices or probabilities); counts correct
        decisions outside training."""
        logits, targets = predictions
        if stage != sb.Stage.TRAIN:
            self.correct += int((logits.argmax(-1) == targets).sum())
            self.total += len(targets)
        return F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)

    def on_stage_start(self, stage, epoch=None) -> None:
        """Reset the accuracy counters."""
        self.correct, self.total = 0, 0

    def stage_stats(self, stage, stage_loss: float) -> dict[str, float]:
        """Loss and accuracy of the pass."""
        return {"loss": stage_loss, "accuracy": 100.0 * self.correct / max(self.total, 1)}

    def run_evaluation(self, datasets: dict, loader_kwargs: dict) -> Path:
        """Test the most accurate checkpoint, then export it to <output_folder>/pretrained."""
        self.evaluate(datasets["test"], max_key="accuracy", test_loader_kwargs=dict(loader_kwargs))
        results = {f"{self.hparams.classifier_name} · test": self.test_stats}
        if if_main_process():
            write_metrics(self.hparams.output_folder, results, ["accuracy", "loss"])
            classifier = getattr(self.modules.classifier, "module", self.modules.classifier)
            export_classifier(classifier, Path(self.hparams.output_folder) / "pretrained")
        return Path(self.hparams.output_folder) / "metrics.md"
