"""The benchmark: timing and memory helpers, and one run through recipes/benchmark.py."""

import json

import torch
from conftest import TINY_DATA, run_recipe

from interpreters.evaluation.benchmark import add_ratios, median_seconds, peak_memory_mib


def test_median_seconds_skips_warmup_and_takes_the_median():
    calls = []
    seconds = median_seconds(lambda: calls.append(1), warmup=2, repeats=5, device="cpu")
    assert len(calls) == 7 and 0 <= seconds < 0.01


def test_peak_memory_sees_a_temporary_allocation():
    def allocate():
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        return float(block.sum())

    assert peak_memory_mib(allocate, "cpu") > 40


def test_ratios_against_forward_and_reference():
    results = {
        "A": {"speed": {"explain b1": 2.0, "forward b1": 1.0}},
        "IG": {"speed": {"explain b1": 40.0, "forward b1": 1.0}},
    }
    add_ratios(results, [1], "IG")
    assert results["A"]["speed"]["× forward b1"] == 2.0
    assert results["A"]["speed"]["× IG b1"] == 0.05
    assert results["IG"]["speed"]["× IG b1"] == 1.0


def test_rows_are_named_by_the_entry_and_a_benchmark_without_metrics_has_none():
    from interpreters.evaluation.comparison import labelled

    rows = {"LMAC-TD · test": {"AD": 1.0}, "oracle mask · mixtures": {"AD": 0.4}}
    named = labelled(rows, "LMAC-TD (unconditioned)")
    assert set(named) == {"LMAC-TD (unconditioned) · test", "oracle mask · mixtures"}
    assert labelled({}, "IG-50") == {}  # --evaluate_metrics=False: nothing to name


def test_benchmark_recipe_measures_every_method(trained_classifier, tmp_path):
    lmac = tmp_path / "lmac"
    data = [f"--data_folder={trained_classifier['data']}", *TINY_DATA]
    classifier = f"--classifier_source={trained_classifier['pretrained']}"
    run_recipe(
        "train.py",
        "hparams/lmac.yaml",
        *data,
        classifier,
        f"--output_folder={lmac}",
        "--number_of_epochs=1",
        "--batch_size=4",
        "--n_examples=1",
    )
    out = tmp_path / "bench"
    methods = (
        f"[{{name: L-MAC, hparams: hparams/lmac.yaml, overrides: {{output_folder: {out}/lmac, "
        f"save_folder: {lmac}/save}}}}, "
        f"{{name: IG, hparams: hparams/baselines.yaml, overrides: {{method: integrated_gradients, "
        f"n_steps: 4, output_folder: {out}/ig}}}}, "
        f"{{name: GradCAM, hparams: hparams/baselines.yaml, overrides: {{method: gradcam, "
        f"output_folder: {out}/gradcam}}}}, "
        "{name: Gone, hparams: hparams/no_such_method.yaml}]"
    )
    result = run_recipe(
        "benchmark.py",
        "hparams/benchmark.yaml",
        *data,
        classifier,
        f"--output_folder={out}",
        f"--method_list={{methods: {methods}}}",
        "--method_overrides={}",
        "--only=[L-MAC,IG,Gone]",
        "--reference_method=IG",
        "--batch_sizes=[1,4]",
        "--warmup=1",
        "--repeats=2",
        "--train_steps=1",
        "--train_batch_size=4",
        "--batch_size=4",
        "--n_examples=1",
        "--profile_explain=True",
    )
    assert "L-MAC: b1:" in result.stdout and "faster than IG" in result.stdout
    record = json.loads((out / "benchmark.json").read_text())
    assert set(record["results"]) == {"L-MAC", "IG"}  # GradCAM left out by --only
    assert record["skipped"] == {"Gone": "yaml not present"}
    lmac_speed, ig_speed = record["results"]["L-MAC"]["speed"], record["results"]["IG"]["speed"]
    for speed in (lmac_speed, ig_speed):
        for size in (1, 4):
            assert speed[f"explain b{size}"] > 0 and speed[f"forward b{size}"] > 0
            assert speed[f"× forward b{size}"] > 0
        assert speed["peak MiB"] >= 0
    assert ig_speed["× IG b4"] == 1.0 and "train clips/s" not in ig_speed
    assert lmac_speed["train clips/s"] > 0 and lmac_speed["params k"] > 0
    assert "SI-SDRi" in record["results"]["L-MAC"]["metrics"]["L-MAC · mixtures"]
    table = (out / "benchmark.md").read_text()
    assert "| L-MAC |" in table and "| IG · test |" in table  # metric rows carry the entry name
    assert "aten::" in (out / "lmac" / "profile.txt").read_text()
