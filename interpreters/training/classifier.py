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


def random_gain_and_shift(wavs: torch.Tensor, max_gain_db: float) -> torch.Tensor:
    """Cheap augmentation: a random gain per clip and a random circular time shift."""
    batch, length = wavs.shape
    gain_db = (torch.rand(batch, 1, device=wavs.device) * 2 - 1) * max_gain_db
    shifts = torch.randint(0, length, (batch, 1), device=wavs.device)
    index = (torch.arange(length, device=wavs.device) + shifts) % length
    return torch.gather(wavs, 1, index) * 10 ** (gain_db / 20)


class ClassifierBrain(Brain):
    """Cross-entropy training; best checkpoint by validation accuracy; export to pretrained/."""

    checkpoint_keys = {"max_keys": ["accuracy"]}

    def compute_forward(self, batch, stage):
        """Waveforms -> logits, augmented while training."""
        wavs = batch.sig.data.to(self.device)
        if stage == sb.Stage.TRAIN and self.hparams.augment_gain_db > 0:
            wavs = random_gain_and_shift(wavs, self.hparams.augment_gain_db)
        return self.modules.classifier(wavs)

    def compute_objectives(self, logits, batch, stage):
        """Cross-entropy; counts correct decisions outside training."""
        labels = batch.label_index.data[:, 0].to(self.device)
        if stage != sb.Stage.TRAIN:
            self.correct += int((logits.argmax(-1) == labels).sum())
            self.total += len(labels)
        return F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)

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
