"""Checkpoints that are either complete or absent, so a run killed while saving still resumes.

SpeechBrain writes a checkpoint's CKPT.yaml first and its parameter files after it: a SIGKILL in
between leaves a folder that looks valid but cannot be loaded. Here each checkpoint is written in
a staging folder and moved into place with one rename once every file is on disk.
"""

from __future__ import annotations

import logging
import os
import shutil

from speechbrain.utils.checkpoints import Checkpoint, Checkpointer
from speechbrain.utils.distributed import if_main_process

logger = logging.getLogger(__name__)

STAGING = ".staging"  # no CKPT.yaml directly inside, so SpeechBrain never lists it


class AtomicCheckpointer(Checkpointer):
    """SpeechBrain's Checkpointer with all-or-nothing saves."""

    def save_checkpoint(self, *args, **kwargs) -> Checkpoint | None:
        """Save into the staging folder, then rename into ``checkpoints_dir``."""
        final_dir = self.checkpoints_dir
        staging = final_dir / STAGING
        if if_main_process() and staging.exists():
            shutil.rmtree(staging)  # leftovers of a save that was killed
        self.checkpoints_dir = staging
        try:
            staged = super().save_checkpoint(*args, **kwargs)
        finally:
            self.checkpoints_dir = final_dir
        if staged is None:  # not the main process
            return None
        target = final_dir / staged.path.name
        while target.exists():
            target = target.with_name(target.name + "+1")
        os.replace(staged.path, target)
        logger.info("Checkpoint complete: moved into %s", target)
        paramfiles = {name: target / path.name for name, path in staged.paramfiles.items()}
        return Checkpoint(target, staged.meta, paramfiles)


def trainable_parts(hparams: dict) -> dict:
    """The modules a recipe trains and checkpoints (its checkpointer's nn.Module recoverables,
    by name): what export ships as ``<name>.ckpt`` and ``--init_from`` loads into."""
    import torch.nn as nn

    checkpointer = hparams.get("checkpointer")
    recoverables = checkpointer.recoverables if checkpointer is not None else {}
    return {name: obj for name, obj in recoverables.items() if isinstance(obj, nn.Module)}
