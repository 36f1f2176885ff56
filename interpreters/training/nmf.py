"""Learning L2I's NMF dictionary with the generic recipe: fit, checkpoints, test error, export."""

from __future__ import annotations

from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.distributed import if_main_process

from interpreters.evaluation.tables import write_metrics
from interpreters.explainers.nmf import export_dictionary, relative_error, save_dictionary_figure
from interpreters.training.brain import Brain


class NMFBrain(Brain):
    """Learns the dictionary with the generic recipe: fit, checkpoints, test error, export."""

    def compute_forward(self, batch, stage):
        """log1p |X| of the batch and its activations under the current W."""
        spectrogram = self.modules.front_end.analyse(batch.sig.data.to(self.device)).compressed
        return spectrogram, self.modules.nmf.activations(spectrogram, self.hparams.n_iter_h)

    def compute_objectives(self, outputs, batch, stage):
        """Mean relative reconstruction error of the batch."""
        spectrogram, activations = outputs
        return relative_error(spectrogram, self.modules.nmf.reconstruct(activations)).mean()

    def fit_batch(self, batch):
        """Solve H, score it, then move W: no optimizer, no gradients."""
        with torch.no_grad():
            spectrogram, activations = self.compute_forward(batch, sb.Stage.TRAIN)
            loss = self.compute_objectives((spectrogram, activations), batch, sb.Stage.TRAIN)
            self.modules.nmf.update(spectrogram, activations, self.hparams.n_iter_w)
        return loss.cpu()

    def stage_stats(self, stage, stage_loss: float) -> dict[str, float]:
        """Mean relative reconstruction error, also in percent."""
        return {"loss": stage_loss, "relative error %": 100.0 * stage_loss}

    def run_evaluation(self, datasets: dict, loader_kwargs: dict) -> Path:
        """Test error of the best W; export it to <output_folder>/pretrained with a picture."""
        self.evaluate(datasets["test"], min_key="loss", test_loader_kwargs=dict(loader_kwargs))
        folder = Path(self.hparams.output_folder)
        if if_main_process():
            write_metrics(folder, {"NMF · test": self.test_stats}, ["relative error %"])
            export_dictionary(self.modules.nmf, folder / "pretrained")
            save_dictionary_figure(
                self.modules.nmf.W,
                folder / "components.png",
                self.modules.front_end.sample_rate / 2,
            )
        return folder / "metrics.md"
