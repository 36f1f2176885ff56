#!/usr/bin/env python3
"""Train a classifier or an interpreter, then evaluate it: python recipes/train.py hparams/X.yaml"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.training.recipe import main, train  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(train, sys.argv[1:]))
