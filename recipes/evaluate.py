#!/usr/bin/env python3
"""Evaluate a trained run's best checkpoint: python recipes/evaluate.py hparams/X.yaml"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.recipe import evaluate, main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(evaluate, sys.argv[1:]))
