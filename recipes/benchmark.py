#!/usr/bin/env python3
"""Benchmark every method on one classifier: python recipes/benchmark.py hparams/benchmark.yaml

Writes benchmark.md and benchmark.json (latency at each batch size, peak memory, training
throughput, the full metric table) and prints each method's latency ratios.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpreters  # noqa: E402,F401  (installs the torchaudio compat hook first)
from interpreters.evaluation.benchmark import benchmark  # noqa: E402
from interpreters.training.recipe import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(benchmark, sys.argv[1:]))
