"""Speed, memory and quality of every method on one classifier and one data set.

For each method listed in a benchmark yaml, in a fresh process of its own (so peak memory is
that method's alone): peak memory of one explanation, explanation latency (median of timed
calls after warm-up) at each batch size, the classifier's own forward time under the same
conditions, training throughput for trained interpreters, and the full metric table. Ratios
to the classifier forward and to a reference method (Integrated Gradients, 50 steps) follow.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import speechbrain as sb
import torch

from interpreters.checkpoints import trainable_parts
from interpreters.errors import InterpreterError
from interpreters.evaluation import metrics
from interpreters.evaluation.comparison import (
    first_clips,
    labelled,
    load_settings,
    method_entries,
)
from interpreters.evaluation.evaluator import FAITHFULNESS_COLUMNS, GROUND_TRUTH_COLUMNS
from interpreters.evaluation.run import MethodRun, load_method

logger = logging.getLogger(__name__)

BENCHMARK_KEYS = [
    "output_folder",
    "method_list",
    "method_overrides",
    "shared_overrides",
    "batch_sizes",
    "warmup",
    "repeats",
    "train_steps",
    "train_batch_size",
    "reference_method",
    "evaluate_metrics",
    "only",
    "profile_explain",
]


def synchronise(device: torch.device | str) -> None:
    """Wait for queued GPU work so wall-clock timings cover it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(call: Callable[[], object], warmup: int, repeats: int, device) -> float:
    """Median wall time of ``call`` over ``repeats`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    synchronise(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        synchronise(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _resident_bytes() -> int:
    """This process's resident set size, from /proc (Linux)."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory_mib(call: Callable[[], object], device: torch.device | str) -> float:
    """Peak memory one call adds, in MiB: allocated GPU memory on CUDA, resident memory
    (sampled every millisecond) on CPU. Run it first in a fresh process, before the allocator
    holds freed blocks that would hide the growth."""
    if torch.device(device).type == "cuda":
        synchronise(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        call()
        synchronise(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    before = _resident_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _resident_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    return (max(peak[0], _resident_bytes()) - before) / 2**20


def clips(dataset, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``batch_size`` clips of a set (repeated if the set is smaller), on device."""
    batch = first_clips(dataset, batch_size)
    wavs, lens = batch.sig.data, batch.sig.lengths
    repeat = -(-batch_size // len(wavs))
    return wavs.repeat(repeat, 1)[:batch_size].to(device), lens.repeat(repeat)[:batch_size]


def latencies(explainer, dataset, settings: dict) -> dict[str, float]:
    """Median milliseconds per batch of ``explain`` and of the classifier forward, per size."""
    row, timing = {}, (settings["warmup"], settings["repeats"], explainer.device)
    for size in settings["batch_sizes"]:
        wavs, lens = clips(dataset, size, explainer.device)
        with torch.no_grad():
            explain = median_seconds(partial(explainer.explain, wavs, lens), *timing)
            forward = median_seconds(partial(explainer.classifier, wavs), *timing)
        row[f"explain b{size}"], row[f"forward b{size}"] = 1000 * explain, 1000 * forward
    return row


def profile(explainer, wavs: torch.Tensor, lens: torch.Tensor, calls: int = 3) -> str:
    """torch.profiler's operator table (self time first) over a few explanations of a batch."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.device(explainer.device).type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.no_grad(), torch.profiler.profile(activities=activities) as profiler:
        for _ in range(calls):
            explainer.explain(wavs, lens)
        synchronise(explainer.device)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25) + "\n"


def training_throughput(brain, dataset, batch_size: int, steps: int) -> float:
    """Clips per second of the interpreter's own training step (after one warm-up step)."""
    batch = first_clips(dataset, batch_size)
    brain.init_optimizers()
    brain.modules.train()
    brain.on_stage_start(sb.Stage.TRAIN)

    def step() -> None:
        brain.step += 1
        brain.fit_batch(batch)

    seconds = median_seconds(step, 1, steps, brain.device)
    brain.modules.eval()
    return len(batch.sig.data) / seconds


def n_parameters(run: MethodRun) -> float:
    """Trained interpreter parameters in thousands (the frozen classifier is not counted)."""
    parts = trainable_parts(run.hparams).values()
    return sum(p.numel() for part in parts for p in part.parameters()) / 1000


def benchmark_method(argv: list[str], settings: dict) -> dict:
    """Every measurement of one method."""
    run = load_method(argv)
    explainer, datasets = run.explainer, run.experiment.datasets
    test = datasets["test"]
    wavs, lens = clips(test, max(settings["batch_sizes"]), explainer.device)
    with torch.no_grad():
        peak = peak_memory_mib(lambda: explainer.explain(wavs, lens), explainer.device)
    speed = {"peak MiB": peak, **latencies(explainer, test, settings)}
    if run.brain is not None:
        speed["params k"] = n_parameters(run)
    if settings["profile_explain"]:
        (Path(run.hparams["output_folder"]) / "profile.txt").write_text(
            profile(explainer, wavs, lens)
        )
    rows = run.evaluate() if settings["evaluate_metrics"] else {}
    if run.brain is not None and settings["train_steps"] > 0:
        speed["train clips/s"] = training_throughput(
            run.brain, datasets["train"], settings["train_batch_size"], settings["train_steps"]
        )
    return {"method": explainer.name, "speed": speed, "metrics": rows}


def _worker(argv: list[str], settings: dict) -> dict | str:
    """Entry point of the per-method process (logs and threads set like the parent's)."""
    torch.set_num_threads(settings["threads"])
    try:
        return benchmark_method(argv, settings)
    except InterpreterError as err:
        return str(err)


def run_isolated(argv: list[str], settings: dict) -> dict | str:
    """``benchmark_method`` in a fresh spawned process: its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_worker, argv, settings).result()


def add_ratios(results: dict[str, dict], sizes: list[int], reference: str) -> None:
    """Latency over the classifier forward and over the reference method, per batch size."""
    base = results.get(reference, {}).get("speed", {})
    for record in results.values():
        speed = record["speed"]
        for size in sizes:
            explain = speed[f"explain b{size}"]
            speed[f"× forward b{size}"] = explain / speed[f"forward b{size}"]
            if f"explain b{size}" in base:
                speed[f"× {reference} b{size}"] = explain / base[f"explain b{size}"]


def speed_columns(sizes: list[int], reference: str) -> list[str]:
    """Column order of the speed table: size, memory, latencies, ratios, throughput."""
    columns = ["params k", "peak MiB"]
    for size in sizes:
        columns += [f"explain b{size}", f"forward b{size}", f"× forward b{size}"]
        columns.append(f"× {reference} b{size}")
    return columns + ["train clips/s"]


def benchmark(argv: list[str]) -> Path:
    """Run every listed method; write benchmark.md and benchmark.json; path of the md."""
    hparams_file, settings, run_opts = load_settings(argv, BENCHMARK_KEYS)
    device = run_opts.get("device") or "cpu"
    settings = {**settings, "threads": torch.get_num_threads()}
    results, skipped = {}, {}
    extra = settings["method_overrides"] or {}
    for name, argv_method in method_entries(settings, device, hparams_file, extra):
        label = name or argv_method[0]
        if settings["only"] and label not in settings["only"]:
            continue
        if not Path(argv_method[0]).is_file():
            skipped[label] = "yaml not present"
            continue
        logger.info("benchmarking %s", label)
        outcome = run_isolated(argv_method, _picklable(settings))
        if isinstance(outcome, str):
            skipped[label] = outcome
            continue
        results[label] = renamed(outcome, name)
    add_ratios(results, settings["batch_sizes"], settings["reference_method"])
    return write_benchmark(settings, results, skipped, device)


def renamed(outcome: dict, name: str | None) -> dict:
    """Metric rows under the benchmark's name for the method (two IG settings stay apart)."""
    return {**outcome, "metrics": labelled(outcome["metrics"], name)}


def _picklable(settings: dict) -> dict:
    """The plain settings a worker needs (yaml objects such as the methods list stay here)."""
    keep = ["batch_sizes", "warmup", "repeats", "train_steps", "train_batch_size"]
    return {k: settings[k] for k in [*keep, "evaluate_metrics", "profile_explain", "threads"]}


def write_benchmark(settings: dict, results: dict, skipped: dict, device: str) -> Path:
    """benchmark.json (everything) and benchmark.md (speed table, metric table, skipped)."""
    folder = Path(settings["output_folder"])
    folder.mkdir(parents=True, exist_ok=True)
    sizes, reference = settings["batch_sizes"], settings["reference_method"]
    speed = {name: record["speed"] for name, record in results.items()}
    columns = [c for c in speed_columns(sizes, reference) if any(c in r for r in speed.values())]
    quality = {row: v for record in results.values() for row, v in record["metrics"].items()}
    columns_all = FAITHFULNESS_COLUMNS + GROUND_TRUTH_COLUMNS
    present = [c for c in columns_all if any(c in r for r in quality.values())]
    header = (
        f"device {device}, {settings['threads']} threads; latencies in milliseconds per batch, "
        f"median of {settings['repeats']} calls after {settings['warmup']} warm-up calls"
    )
    parts = [
        "## Speed and memory",
        header,
        metrics.format_table(speed, columns, name_header="method"),
        "## Metrics",
        metrics.format_table(quality, present) if quality else "(not evaluated)",
    ]
    if skipped:
        parts += ["## Skipped", "\n".join(f"- {k}: {v}" for k, v in skipped.items())]
    md_path = folder / "benchmark.md"
    md_path.write_text("\n\n".join(parts) + "\n")
    record = {"device": device, "threads": settings["threads"], "results": results}
    record["skipped"] = skipped
    (folder / "benchmark.json").write_text(json.dumps(record, indent=2) + "\n")
    print_ratios(speed, sizes, reference)
    return md_path


def print_ratios(speed: dict[str, dict], sizes: list[int], reference: str) -> None:
    """The ratios that matter, one line per method."""
    for name, row in speed.items():
        parts = []
        for size in sizes:
            parts.append(f"b{size}: {row[f'× forward b{size}']:.1f}× forward")
            if f"× {reference} b{size}" in row:
                parts.append(f"{1 / row[f'× {reference} b{size}']:.1f}× faster than {reference}")
        print(f"{name}: " + ", ".join(parts))
