#!/usr/bin/env python3
"""Evaluate a trained run's best checkpoint: python recipes/evaluate.py hparams/X.yaml

An attribution yaml (hparams/baselines.yaml) is evaluated as is; a comparison yaml
(hparams/compare_methods.yaml, a ``method_list``) evaluates every listed method on the same
classifier and data and writes one comparison table.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.evaluation.run import evaluate  # noqa: E402
from interpreters.training.recipe import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(evaluate, sys.argv[1:]))
