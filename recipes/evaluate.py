#!/usr/bin/env python3
"""Evaluate a trained run's best checkpoint: python recipes/evaluate.py hparams/X.yaml

A yaml with a ``methods:`` list (hparams/compare_methods.yaml) evaluates every listed method on
the same classifier and data and writes one comparison table.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.recipe import evaluate, main  # noqa: E402

if __name__ == "__main__":
    from interpreters.comparison import compare, is_comparison

    comparing = len(sys.argv) > 1 and is_comparison(sys.argv[1])
    sys.exit(main(compare if comparing else evaluate, sys.argv[1:]))
