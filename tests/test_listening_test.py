"""Listening tests: build (determinism, blinding, errors), answers (atomic, resume, no
overwrite), analysis on simulated listeners, a scripted listener in headless Chromium, and the
command line including the screenshot command."""

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, TINY_DATA, run_recipe

from interpreters.data.synth import prepare_synth
from interpreters.errors import InterpreterError
from interpreters.room.listening.analyse import analyse_test
from interpreters.room.listening.build import ANCHOR, HIDDEN_REFERENCE, build_test, usable_clips
from interpreters.room.listening.runs import load_run, target_stem
from interpreters.room.listening.store import (
    answers_path,
    listener_id,
    load_answers,
    load_key,
    load_test,
    next_trial,
    record_answer,
)

# ---- runs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(exported, trained_classifier, tmp_path_factory):
    """Two real runs on the same tiny data: the shared L-MAC run and an input-energy baseline
    evaluated by recipes/evaluate.py on the mixtures only (an evaluate-only run: it records no
    data folder, so builds pass --data_folder)."""
    baseline = tmp_path_factory.mktemp("energy") / "run"
    run_recipe(
        "evaluate.py",
        "hparams/baselines.yaml",
        "--method=input_energy",
        f"--data_folder={trained_classifier['data']}",
        f"--classifier_source={trained_classifier['pretrained']}",
        f"--output_folder={baseline}",
        "--n_examples=6",
        "--eval_sets=[mixtures]",
        *TINY_DATA,
    )
    runs = [exported["run"], baseline]
    loaded = [load_run(run, "mixtures", str(trained_classifier["data"])) for run in runs]
    usable, _ = usable_clips(loaded, stems=True)
    assert usable, "the tiny runs share no mixture whose decision is one of its sources"
    return {"runs": runs, "data": str(trained_classifier["data"]), "usable": len(usable)}


def build_small(two_runs, out, **options):
    """A MUSHRA test of every usable clip of the two real runs."""
    options = {"n": two_runs["usable"], "data_folder": two_runs["data"], **options}
    return build_test(two_runs["runs"], out, "mixtures", **options)


def fake_run(folder: Path, data: Path, manifest: dict, make) -> Path:
    """A run folder as the evaluation writes it, with real wavs: per mixture, its input and
    the interpretation ``make(mixture, stem, other)`` explaining the first source's class."""
    wav = folder / "examples" / "mixtures" / "wav"
    wav.mkdir(parents=True)
    for uid, entry in manifest.items():
        mix, rate = sf.read(entry["wav"].replace("{data_root}", str(data)), dtype="float32")
        stem, _ = sf.read(entry["stem1"].replace("{data_root}", str(data)), dtype="float32")
        name = f"{uid}_{entry['label1']}"
        sf.write(wav / f"{name}_input.wav", mix, rate, subtype="FLOAT")
        sf.write(wav / f"{name}_interpretation.wav", make(mix, stem, mix - stem), rate)
        sf.write(wav / f"{name}_residual.wav", mix - make(mix, stem, mix - stem), rate)
    (folder / "hyperparams.yaml").write_text(
        f"data:\n  dataset: synth\n  data_folder: {data}\n  data_seed: 7\n  duration: 0.5\n"
        "  sample_rate: 16000\nmethod_name: fake\n"
    )
    return folder


# Three methods with planted qualities: two near-equal good ones and a poor one.
METHODS = {
    "good": lambda mix, stem, other: stem + 0.1 * other,
    "twin": lambda mix, stem, other: stem + 0.12 * other,
    "poor": lambda mix, stem, other: 0.5 * stem + 0.9 * other,
}


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory):
    """Three run folders of 30 generated mixtures (0.5 s), one per planted method."""
    base = tmp_path_factory.mktemp("fake_runs")
    data = base / "data"
    prepare_synth(str(data), 1, 1, 1, n_mixtures=30, duration=0.5, seed=7)
    manifest = json.loads((data / "mixtures.json").read_text())
    return [fake_run(base / name, data, manifest, make) for name, make in METHODS.items()]


# ---- build -----------------------------------------------------------------------------------


def test_build_is_deterministic_blind_and_self_contained(two_runs, tmp_path):
    first = build_small(two_runs, tmp_path / "a", seed=3)
    again = build_small(two_runs, tmp_path / "b", seed=3)
    assert first.read_bytes() == again.read_bytes()
    assert (tmp_path / "a/key.json").read_bytes() == (tmp_path / "b/key.json").read_bytes()
    for path in (tmp_path / "a/audio").rglob("*.wav"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    keys = [load_key(build_small(two_runs, tmp_path / f"s{s}", seed=s).parent) for s in range(4, 9)]
    assert any(key["trials"] != load_key(tmp_path / "a")["trials"] for key in keys)

    test, key = load_test(tmp_path / "a"), load_key(tmp_path / "a")
    text = first.read_text()
    run_a, run_b = (load_run(run, "mixtures", two_runs["data"]) for run in two_runs["runs"])
    for secret in [*key["methods"], HIDDEN_REFERENCE, ANCHOR, *run_a.clips, "/tmp", "results"]:
        assert secret not in text  # nothing in what the page reads names a method or a clip
    assert len(test["trials"]) == two_runs["usable"]
    assert set(key["conditions"]) == {*key["methods"], HIDDEN_REFERENCE, ANCHOR}
    for trial in test["trials"]:
        trial_key = key["trials"][trial["id"]]
        names = [sound["name"] for sound in trial["sounds"]]
        assert names == ["A", "B", "C", "D"]
        assert sorted(trial_key["sounds"].values()) == sorted(key["conditions"])
        for sound in trial["sounds"]:
            assert Path(sound["file"]).name == f"{sound['name']}.wav"  # neutral file names
        heard = {
            c: sf.read(tmp_path / "a" / f"audio/{trial['id']}/{n}.wav")[0]
            for n, c in trial_key["sounds"].items()
        }
        clip = trial_key["clip"]
        stem = target_stem(run_a.manifest[clip], run_a.clips[clip].label)
        assert np.array_equal(heard[HIDDEN_REFERENCE], sf.read(stem)[0])
        assert np.array_equal(heard[ANCHOR], sf.read(run_a.clips[clip].input)[0])
        assert np.array_equal(
            heard[key["methods"][1]], sf.read(run_b.clips[clip].interpretation)[0]
        )
        assert np.array_equal(sf.read(tmp_path / "a" / trial["reference"])[0], sf.read(stem)[0])

    moved = tmp_path / "elsewhere" / "test"  # self-contained: it works wherever it is copied
    shutil.copytree(tmp_path / "a", moved)
    for trial in load_test(moved)["trials"]:
        assert all((moved / sound["file"]).is_file() for sound in trial["sounds"])


def test_build_errors_are_one_line(two_runs, tmp_path):
    runs, data = two_runs["runs"], two_runs["data"]
    with pytest.raises(InterpreterError, match=r"no examples of set 'test'.*--n_examples=N"):
        build_test(runs, tmp_path / "t1", "test", 1, data_folder=data)
    n = two_runs["usable"] + 1
    with pytest.raises(
        InterpreterError, match=r"share \d+ usable .*recipes/evaluate.py .*--n_examples="
    ):
        build_test(runs, tmp_path / "t2", "mixtures", n, data_folder=data)
    with pytest.raises(InterpreterError, match="records no data folder.*--data_folder"):
        build_test(runs, tmp_path / "t3", "mixtures", 1)

    other_seed = tmp_path / "other_seed"  # the same run, said to be made on other data
    shutil.copytree(runs[0], other_seed, ignore=shutil.ignore_patterns("save"))
    hparams = other_seed / "hyperparams.yaml"
    hparams.write_text(hparams.read_text().replace("data_seed: 1234", "data_seed: 99", 1))
    with pytest.raises(InterpreterError, match="different data: .* data_seed 1234, .* 99"):
        build_test([runs[0], other_seed], tmp_path / "t4", "mixtures", 1, data_folder=data)

    other_audio = tmp_path / "other_audio"  # inputs that do not sound the same
    shutil.copytree(runs[1], other_audio, ignore=shutil.ignore_patterns("save"))
    for path in (other_audio / "examples/mixtures/wav").glob("*_input.wav"):
        wav, rate = sf.read(path)
        sf.write(path, 0.5 * wav, rate, subtype="FLOAT")
    with pytest.raises(InterpreterError, match="different data: clip .* differs"):
        build_test([runs[0], other_audio], tmp_path / "t5", "mixtures", 1, data_folder=data)

    build_small(two_runs, tmp_path / "t6")
    with pytest.raises(InterpreterError, match="not empty"):
        build_small(two_runs, tmp_path / "t6")
    with pytest.raises(InterpreterError, match="two runs or more"):
        build_test(runs[:1], tmp_path / "t7", "mixtures", 1, mode="ab", data_folder=data)
    for run in (tmp_path / "t1", tmp_path / "t2", tmp_path / "t4", tmp_path / "t5"):
        assert not run.exists()  # a refused build leaves nothing behind


# ---- answers ---------------------------------------------------------------------------------


def test_answers_are_atomic_resumable_and_never_overwritten(two_runs, tmp_path, monkeypatch):
    folder = build_small(two_runs, tmp_path / "test").parent
    test = load_test(folder)
    first, names = test["trials"][0], [s["name"] for s in test["trials"][0]["sounds"]]
    ratings = {name: 10.0 * i for i, name in enumerate(names)}
    assert record_answer(folder, test, "alice", first["id"], {"ratings": ratings})
    saved = json.loads(answers_path(folder, "alice").read_text())
    assert saved["answers"][first["id"]]["ratings"] == ratings
    assert next_trial(test, load_answers(folder, test, "alice")) == (
        1 if len(test["trials"]) > 1 else None
    )
    assert next_trial(test, load_answers(folder, test, "bob")) == 0  # a new listener starts
    assert list((folder / "answers").iterdir()) == [answers_path(folder, "alice")]

    before = answers_path(folder, "alice").read_bytes()
    assert not record_answer(
        folder, test, "alice", first["id"], {"ratings": dict.fromkeys(names, 99)}
    )
    assert answers_path(folder, "alice").read_bytes() == before  # the first answer is kept
    assert record_answer(folder, test, "bob", first["id"], {"ratings": dict.fromkeys(names, 5)})
    assert answers_path(folder, "alice").read_bytes() == before  # another listener, another file

    with pytest.raises(InterpreterError, match="rate every sound"):
        record_answer(folder, test, "carol", first["id"], {"ratings": {"A": 50}})
    with pytest.raises(InterpreterError, match="0-100"):
        record_answer(folder, test, "carol", first["id"], {"ratings": dict.fromkeys(names, 101)})
    for bad in ["../alice", "a/b", "", ".hidden", "x" * 65, "al ice", "C:\\x"]:
        with pytest.raises(InterpreterError, match="listener name"):
            listener_id(bad)

    if len(test["trials"]) > 1:  # a write that dies halfway leaves the previous file whole
        import interpreters.data._io as io_module

        def crash(*_):
            raise OSError("disk gone")

        monkeypatch.setattr(io_module.os, "replace", crash)
        second = test["trials"][1]["id"]
        with pytest.raises(OSError):
            record_answer(folder, test, "alice", second, {"ratings": dict.fromkeys(names, 1)})
        monkeypatch.undo()
        assert answers_path(folder, "alice").read_bytes() == before
    foreign = dict(json.loads(before), test="another")
    answers_path(folder, "dave").write_text(json.dumps(foreign))
    with pytest.raises(InterpreterError, match="another test"):
        load_answers(folder, test, "dave")


# ---- analysis --------------------------------------------------------------------------------

TRUE_MEANS = {"good": 70.0, "twin": 70.0, "poor": 35.0, HIDDEN_REFERENCE: 96.0, ANCHOR: 20.0}
BAD_LISTENERS = ("lazy1", "lazy2")


def simulate_mushra(folder: Path, listeners: int = 12, seed: int = 0) -> None:
    """Listeners rating each condition around its true mean (sd 8); the bad ones rate the
    hidden reference low in a third of the trials and the poor method high."""
    test, key = load_test(folder), load_key(folder)
    rng = np.random.default_rng(seed)
    names = [f"listener{i:02d}" for i in range(listeners - len(BAD_LISTENERS))]
    for listener in [*names, *BAD_LISTENERS]:
        bad = listener in BAD_LISTENERS
        for index, trial in enumerate(test["trials"]):
            ratings = {}
            for name, condition in key["trials"][trial["id"]]["sounds"].items():
                mean = 85.0 if bad and condition == "poor" else TRUE_MEANS[condition]
                rating = rng.normal(mean, 8)
                if condition == HIDDEN_REFERENCE:
                    rating = rng.uniform(50, 80) if bad and index % 3 == 0 else rng.uniform(91, 100)
                ratings[name] = float(np.clip(np.round(rating), 0, 100))
            record_answer(folder, test, listener, trial["id"], {"ratings": ratings})


def test_mushra_analysis_recovers_planted_listeners(fake_runs, tmp_path):
    folder = build_test(fake_runs, tmp_path / "test", "mixtures", 20, seed=1).parent
    with pytest.raises(InterpreterError, match="no answers"):
        analyse_test(folder)
    simulate_mushra(folder)
    results = analyse_test(folder, tmp_path / "analysis")

    assert results["excluded"] == sorted(BAD_LISTENERS)  # exactly the planted bad listeners
    assert results["screening"]["lazy1"]["share"] > 0.15
    for condition in METHODS:  # a 95 % interval: each check would miss for 1 seed in 20
        summary = results["means"][condition]
        assert summary["n"] == 10 * 20
        assert summary["low"] < TRUE_MEANS[condition] < summary["high"], condition
    assert abs(results["means"][ANCHOR]["mean"] - TRUE_MEANS[ANCHOR]) < 2
    means = {name: m["mean"] for name, m in results["means"].items()}
    assert means[HIDDEN_REFERENCE] > means["good"] > means["poor"] > means[ANCHOR]
    tests = {(t["a"], t["b"]): t for t in results["pairwise"]}
    assert tests[("good", "poor")]["different"] and tests[("twin", "poor")]["different"]
    assert not tests[("good", "twin")]["different"]  # a zero difference is not found
    assert tests[("good", "poor")]["pairs"] == 200
    assert all(t["p_holm"] >= t["p"] for t in tests.values())
    assert results["correlation"]["SI-SDR"]["rho"] > 0.5  # better separations rated higher
    assert results["correlation"]["LSD"]["rho"] < -0.5
    assert results["correlation"]["SI-SDR"]["points"] == 3 * 20

    markdown = (tmp_path / "analysis/results.md").read_text()
    assert "| lazy1 | 20 |" in markdown and "excluded" in markdown and "Holm" in markdown
    assert json.loads((tmp_path / "analysis/results.json").read_text())["excluded"] == [
        "lazy1",
        "lazy2",
    ]
    assert (tmp_path / "analysis/ratings.png").read_bytes()[:4] == b"\x89PNG"


def test_ab_analysis_recovers_planted_preferences(fake_runs, tmp_path):
    folder = build_test(fake_runs, tmp_path / "ab", "mixtures", 12, mode="ab", seed=2).parent
    test, key = load_test(folder), load_key(folder)
    assert len(test["trials"]) == 12 * 3  # every pair of methods on every clip
    rng = np.random.default_rng(5)
    preferred = {("good", "poor"): 0.9, ("poor", "twin"): 0.1, ("good", "twin"): 0.5}
    for listener in range(8):
        for trial in test["trials"]:
            sounds = key["trials"][trial["id"]]["sounds"]  # {"A": method, "B": method}
            first, second = sorted(sounds.values())
            winner = first if rng.random() < preferred[(first, second)] else second
            choice = next(name for name, method in sounds.items() if method == winner)
            record_answer(folder, test, f"l{listener}", trial["id"], {"choice": choice})
    on_left = [
        min(key["trials"][t["id"]]["sounds"].values()) == key["trials"][t["id"]]["sounds"]["A"]
        for t in test["trials"]
    ]
    assert 0 < sum(on_left) < len(on_left)  # the order within a pair is randomised
    results = analyse_test(folder)
    pairs = {(p["a"], p["b"]): p for p in results["pairs"]}
    assert pairs[("good", "poor")]["trials"] == 8 * 12
    assert pairs[("good", "poor")]["low"] < 0.9 < pairs[("good", "poor")]["high"]
    assert pairs[("good", "poor")]["different"] and pairs[("twin", "poor")]["different"]
    assert pairs[("twin", "poor")]["rate"] > 0.75
    assert not pairs[("good", "twin")]["different"]
    assert pairs[("good", "twin")]["low"] < 0.5 < pairs[("good", "twin")]["high"]
    assert results["overall"]["poor"]["rate"] < 0.25
    assert "Clopper-Pearson" in (folder / "analysis/results.md").read_text()


# ---- the page --------------------------------------------------------------------------------


SOUNDS_LOADED = """() => {
    const players = [...document.querySelectorAll('audio')].filter(a => a.offsetParent);
    return players.length === 5 && players.every(a => a.duration > 0);
}"""


def test_scripted_listener_completes_the_test_in_the_browser(two_runs, tmp_path):
    from interpreters.room.browser import browser_page
    from interpreters.room.listening.screenshot import answer_trial, open_test, submit_trial
    from interpreters.room.listening.serve import launch

    folder = build_small(two_runs, tmp_path / "test").parent
    test = load_test(folder)
    total = len(test["trials"])
    typed = [[13 + 17 * i + t for i in range(4)] for t in range(total)]
    app = launch(folder, block=False)
    try:
        with browser_page() as page:
            page.goto(app.local_url)  # a name that is not plain is refused, nothing written
            page.get_by_label("Your name or listener id").fill("../evil")
            page.get_by_role("button", name="Start").click()
            page.get_by_text("is not usable").wait_for()
            open_test(page, app.local_url, "alice")
            for index in range(total):
                page.get_by_text(f"Trial {index + 1} of {total}").wait_for()
                page.wait_for_function(SOUNDS_LOADED)  # the reference and the four sounds play
                sources = page.eval_on_selector_all(
                    "audio", "els => els.filter(e => e.offsetParent).map(e => e.currentSrc)"
                )
                assert all(
                    src.endswith(("/reference.wav", "A.wav", "B.wav", "C.wav", "D.wav"))
                    and str(folder) in src
                    for src in sources
                )  # neutral, no cache hash
                answer_trial(page, test, index, typed[index])
                if index == 0 and total > 1:  # stop after one trial and come back
                    submit_trial(page, index, total)
                    open_test(page, app.local_url, "alice")
                    page.get_by_text("Welcome back: 1 trials already answered.").wait_for()
                    page.get_by_text(f"Trial 2 of {total}").wait_for()
                    continue
                submit_trial(page, index, total)
            page.get_by_text(f"All {total} trials are answered.").wait_for()
            errors = page.console_errors
        with pytest.raises(urllib.error.HTTPError, match="403"):  # the key is never served
            urllib.request.urlopen(f"{app.local_url}gradio_api/file={folder / 'key.json'}")
    finally:
        app.close()
    assert errors == []
    assert sorted(p.name for p in (folder / "answers").iterdir()) == ["alice.json"]
    answers = json.loads((folder / "answers/alice.json").read_text())["answers"]
    for trial, ratings in zip(test["trials"], typed):
        names = [sound["name"] for sound in trial["sounds"]]
        assert answers[trial["id"]]["ratings"] == dict(zip(names, map(float, ratings)))


def test_command_line_build_analyse_screenshot(two_runs, tmp_path):
    script = [sys.executable, str(ROOT / "recipes/listening_test.py")]

    def run(*args):
        return subprocess.run(
            [*script, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
        )

    wrong = run("build", "--runs", "x", "--out", str(tmp_path / "t"), "--n", "0")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "--n" in wrong.stderr
    runs = [str(run_folder) for run_folder in two_runs["runs"]]
    common = ["build", "--runs", *runs, "--data_folder", two_runs["data"], "--out"]
    short = run(*common, str(tmp_path / "t"), "--n", "99")
    assert short.returncode == 2 and short.stderr.count("\n") == 1
    assert "recipes/evaluate.py" in short.stderr and "--n_examples=" in short.stderr
    built = run(*common, str(tmp_path / "t"), "--n", str(two_runs["usable"]), "--mode", "ab")
    assert built.returncode == 0, built.stderr
    empty = run("analyse", str(tmp_path / "t"))
    assert empty.returncode == 2 and "no answers" in empty.stderr
    shot = run("serve", str(tmp_path / "t"), "--screenshot", str(tmp_path / "shot.png"))
    assert shot.returncode == 0, shot.stderr
    assert (tmp_path / "shot.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "t/answers").exists()  # the screenshot answers a copy of the test
