#!/usr/bin/env python3
"""Throughput of the interpret command on generated clips, its start-up time, and the peak memory
of one long file: python recipes/benchmark_interpret.py --source EXPORT [--n 200] [--minutes 10]

Writes interpret_benchmark.json and prints one line per figure.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]


def write_clips(folder: Path, n: int, seconds: float, rate: int, seed: int = 0) -> None:
    """``n`` clips of tones in noise, deterministic by seed."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 4000) * t)
        sf.write(
            folder / f"clip{i:04d}.wav",
            (tone + 0.05 * rng.standard_normal(len(t))).astype("f4"),
            rate,
        )


def seconds_of(args: list[str]) -> float:
    """Wall seconds of one Python process run with ``args``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def timed_run(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (MB) of one interpret.py process."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "interpret.py"), *args],
        check=True,
        capture_output=True,
    )
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.perf_counter() - start, peak_kb // 1024


def main(argv: list[str]) -> int:
    """Run each measurement in its own process, as a user would."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", default="interpret_benchmark.json")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["help_s"] = seconds_of([str(ROOT / "recipes" / "interpret.py"), "--help"])
        results["startup_s"] = seconds_of(["-c", "import interpreters.inference.cli"])
        write_clips(tmp / "one", 1, 1.0, 16000)
        one, _ = timed_run(["--source", args.source, str(tmp / "one"), "--out", str(tmp / "o1")])
        write_clips(tmp / "clips", args.n, 1.0, 16000)
        many, _ = timed_run(["--source", args.source, str(tmp / "clips"), "--out", str(tmp / "o2")])
        results["files"] = args.n
        results["files_per_s"] = (args.n - 1) / max(many - one, 1e-9)  # start-up and load excluded
        results["files_per_s_with_startup"] = args.n / many
        write_clips(tmp / "long", 1, 60 * args.minutes, 16000)
        seconds, peak = timed_run(
            ["--source", args.source, str(tmp / "long"), "--out", str(tmp / "o3")]
        )
        results.update(
            {"long_file_minutes": args.minutes, "long_file_s": seconds, "long_file_peak_mb": peak}
        )
    Path(args.out).write_text(json.dumps(results, indent=1))
    for key, value in results.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
