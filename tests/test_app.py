"""The interactive explainer: its callbacks on real wavs, the page in headless chromium, and
recipes/app.py's arguments and screenshot command."""

import importlib.util
import os

import numpy as np
import pytest
import soundfile as sf
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from conftest import ROOT  # noqa: E402

from interpreters.errors import InterpreterError  # noqa: E402
from interpreters.room import app as room  # noqa: E402
from interpreters.room.browser import browser_page  # noqa: E402


@pytest.fixture(scope="module")
def explainer_app(exported, tmp_path_factory):
    """The app on the tiny L-MAC export, offering its run's evaluation examples."""
    saved = tmp_path_factory.mktemp("app_saved")
    interpreters = room.load_interpreters([str(exported["folder"])], saved)
    app = room.ExplainerApp(interpreters, room.find_examples([str(exported["run"])], []))
    yield app
    app.close()


@pytest.fixture(scope="module")
def clips(exported, tmp_path_factory):
    """Real clips written with soundfile: an example as it is (0.5 s, 16 kHz, mono) and a
    longer one, stereo at 22.05 kHz (resampled, downmixed and explained in windows)."""
    folder = tmp_path_factory.mktemp("app_clips")
    example = sorted((exported["run"] / "examples").rglob("*_input.wav"))[0]
    audio, rate = sf.read(example, dtype="float32")
    long = np.resize(audio, int(2.6 * len(audio)))  # the example repeated
    long = np.interp(np.arange(0, len(long), rate / 22050), np.arange(len(long)), long)
    sf.write(folder / "long_stereo_22k.wav", np.stack([long, 0.5 * long], 1), 22050)
    return {"example": example, "long": folder / "long_stereo_22k.wav"}


def _explain(app, clip, strength=1.0, choice=room.DECISION):
    """The explain callback with every loaded interpreter."""
    return app.explain(str(clip), list(app.interpreters), choice, "", strength)


def _assert_sounds_match(view, clip, rate):
    """Every sound of ``view`` lasts as long as ``clip`` and is at ``rate``."""
    duration = sf.info(str(clip)).duration
    for kind in room.SOUNDS:
        audio, written = sf.read(view.sounds[kind], dtype="float32")
        assert written == rate and audio.ndim == 1, kind
        assert abs(len(audio) / rate - duration) < 1e-3, (kind, len(audio) / rate, duration)
        assert np.isfinite(audio).all(), kind


@pytest.mark.parametrize("name", ["example", "long"])
def test_explain_gives_sounds_picture_top_classes_and_verdict(explainer_app, clips, name):
    line, explained, views = _explain(explainer_app, clips[name])
    (label,) = explainer_app.interpreters
    interpreter = explainer_app.interpreters[label]
    assert line.startswith(f"Explained {clips[name].name} with 1 of 1")
    _assert_sounds_match(views[label], clips[name], interpreter.sample_rate)
    assert views[label].picture.stat().st_size > 1000
    top = views[label].top
    assert len(top) == 5 and list(top)[0] == explained[label].result.label
    assert 0.99 < sum(explained[label].result.probabilities.tolist()) < 1.01
    assert room.VERDICT in views[label].heading and "the decision" in views[label].heading
    assert "kHz bottom to top" in views[label].caption


def test_asking_for_a_class_explains_that_class(explainer_app, clips):
    (name,) = explainer_app.interpreters
    decision = _explain(explainer_app, clips["example"])[1][name].result.label
    other = next(c for c in room.target_choices(explainer_app.interpreters)[1:] if c != decision)
    _, explained, views = _explain(explainer_app, clips["example"], choice=other)
    assert explained[name].result.label == other
    assert f"*{other}*, as asked" in views[name].heading


def test_strength_resynthesises_from_the_mask_without_explaining_again(
    explainer_app, clips, monkeypatch
):
    (name,) = explainer_app.interpreters
    interpreter = explainer_app.interpreters[name]
    _, explained, views = _explain(explainer_app, clips["long"])
    calls = []
    monkeypatch.setattr(interpreter, "interpret_file", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(interpreter.explainer, "explain", lambda *a, **k: calls.append(a))
    original, _ = sf.read(views[name].sounds["interpretation"], dtype="float32")
    for strength in (2.0, 0.5, 0.0):
        view = explainer_app.restrength(explained, strength)[name]
        _assert_sounds_match(view, clips["long"], interpreter.sample_rate)
        assert f"mask strength {strength:g}" in view.heading and room.VERDICT in view.heading
        interpretation, _ = sf.read(view.sounds["interpretation"], dtype="float32")
        assert np.abs(interpretation - original).max() > 1e-3, (
            f"strength {strength} changed nothing"
        )
    assert not calls, "the strength control explained again"
    # strength 0 keeps the whole input: the interpretation is the input, the residual silence
    wav, _ = sf.read(view.sounds["input"], dtype="float32")
    residual, _ = sf.read(view.sounds["residual"], dtype="float32")
    assert np.abs(interpretation - wav).max() < 1e-3 * np.abs(wav).max()
    assert np.abs(residual).max() < 1e-3 * np.abs(wav).max()
    mask = explained[name].result.mask
    assert torch.equal(room.strengthened(mask, 1.0), mask.clamp(0, 1))
    assert torch.allclose(room.strengthened(torch.tensor([0.5]), 2.0), torch.tensor([0.25]))


def _bad_files(folder):
    """Missing, corrupt, silent, NaN, too short and wrong-format files."""
    folder.mkdir()
    rate, noise = 16000, (0.1 * np.random.default_rng(0).standard_normal(16000)).astype("f4")
    (folder / "corrupt.wav").write_bytes(b"RIFF0000WAVEjunk")
    (folder / "notes.txt").write_text("not audio at all\n" * 20)
    sf.write(folder / "silent.wav", np.zeros(rate, "float32"), rate)
    broken = noise.copy()
    broken[100] = np.nan
    sf.write(folder / "nan.wav", broken, rate, subtype="FLOAT")
    sf.write(folder / "too_short.wav", noise[:800], rate)
    return [folder / "missing.wav", *sorted(folder.iterdir())]


def test_bad_files_are_one_line_in_the_page_and_the_app_keeps_working(
    explainer_app, clips, tmp_path
):
    (name,) = explainer_app.interpreters
    interpreter = explainer_app.interpreters[name]
    for path in _bad_files(tmp_path / "bad"):
        with pytest.raises(InterpreterError) as expected:
            interpreter.interpret_file(path)  # what the interpret command reports
        line, explained, views = _explain(explainer_app, path)
        assert line == f"⚠ {expected.value}" and "\n" not in line, path.name
        assert not explained and views[name].sounds is None
        assert str(path) in line
    line, explained, _ = _explain(explainer_app, clips["example"])
    assert line.startswith("Explained") and explained
    assert explainer_app.explain(None, [name], None, None, 1.0)[0] == room.NO_CLIP


def test_examples_of_a_run_are_its_inputs_and_missing_ones_are_one_line(exported, tmp_path):
    examples = room.find_examples([str(exported["run"])], [])
    inputs = sorted((exported["run"] / "examples").rglob("*_input.wav"))
    assert sorted(examples.values()) == inputs and len(inputs) >= 2
    assert all("/wav/" not in name and not name.endswith("_input") for name in examples)
    single = room.find_examples([str(inputs[0])], [])
    assert list(single.values()) == [inputs[0]]
    with pytest.raises(InterpreterError, match="does not exist"):
        room.find_examples([str(tmp_path / "nothing")], [])


def test_targets_prompts_and_names():
    class Fake:
        labels = ["siren", "knock"]
        accepts_prompts = False

    zero_shot = type("ZeroShot", (Fake,), {"accepts_prompts": True})()
    assert room.target_choices({"a": Fake(), "b": zero_shot}) == [room.DECISION, "siren", "knock"]
    assert room.target_of(Fake(), room.DECISION, "a dog") is None
    assert room.target_of(Fake(), "knock", "a dog") == "knock"
    assert room.target_of(zero_shot, "knock", " a dog ") == "a dog"
    assert room.target_of(zero_shot, "knock", None) == "knock"
    assert "the prompt “a dog”" in room.what_is_explained("a dog", "siren", Fake.labels)
    assert room.unique_name("L-MAC (x)", {"L-MAC (x)": 1}) == "L-MAC (x) #2"


def durations_of(page) -> list[float]:
    """The duration of every <audio> with a source (its metadata is loaded: see
    room.wait_for_explanation)."""
    return page.evaluate(
        "Array.from(document.querySelectorAll('audio')).filter(a => a.src).map(a => a.duration)"
    )


def test_page_in_headless_chromium(explainer_app, clips, tmp_path):
    (name,) = explainer_app.interpreters
    rate = explainer_app.interpreters[name].sample_rate
    blocks = room.build_blocks(explainer_app)
    url = room.launch(blocks, explainer_app, port=0)
    try:
        with browser_page() as page:
            room.open_page(page, url)
            room.upload_clip(page, clips["long"])
            room.wait_for_explanation(page, 1)
            durations = durations_of(page)
            assert len(durations) == 3
            clip_seconds = sf.info(str(clips["long"])).duration
            assert all(abs(d - clip_seconds) < 2 / rate + 1e-3 for d in durations), durations
            assert page.get_by_text(room.VERDICT).count() == 1
            before = {a.get_attribute("src") for a in page.locator("audio[src]").all()}
            strength = page.locator("input[type=number]")  # the slider's number box
            strength.fill("2")
            strength.press("Enter")
            page.wait_for_selector("text=mask strength 2.")
            # the heading may update before the players do: wait for a new interpretation and
            # residual (the input's file may keep its cached address: its content is the same)
            page.wait_for_function(
                "old => { const s = Array.from(document.querySelectorAll('audio[src]'))"
                ".map(a => a.getAttribute('src'));"
                " return s.length === 3 && s.filter(x => !old.includes(x)).length >= 2; }",
                arg=sorted(before),
                timeout=60000,
            )
            room.wait_for_explanation(page, 1)
            after = {a.get_attribute("src") for a in page.locator("audio[src]").all()}
            assert len(after) == 3 and len(after - before) >= 2, "the strength gave no new sounds"
            assert all(abs(d - clip_seconds) < 2 / rate + 1e-3 for d in durations_of(page))
            bad = _bad_files(tmp_path / "bad")[1]  # corrupt.wav
            room.upload_clip(page, bad)
            page.wait_for_selector(f"#status >> text={bad.name} cannot be read")
            assert page.locator("audio[src]").count() == 0, "a bad file left old sounds shown"
            room.upload_clip(page, clips["example"])
            room.wait_for_explanation(page, 1)
            assert page.console_errors == []
    finally:
        blocks.close()


def _app_main():
    """recipes/app.py's main, run in this process (gradio and torch are imported once)."""
    spec = importlib.util.spec_from_file_location("app_recipe", ROOT / "recipes/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


BAD_ARGUMENTS = {
    "no source": ([], "--source"),
    "unknown option": (["--source", "{export}", "--colour", "red"], "--colour"),
    "missing source": (["--source", "{tmp}/no/such"], "is not a folder"),
    "missing examples": (["--source", "{export}", "--examples", "{tmp}/none"], "does not exist"),
    "not a port": (["--source", "{export}", "--port", "70000"], "70000"),
    "screenshot not png": (["--source", "{export}", "--screenshot", "a.jpg"], ".png"),
    "screenshot without clips": (["--source", "{export}", "--screenshot", "a.png"], "examples"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_exit_2_with_one_line_before_launching(case, exported, tmp_path, capsys):
    argv, expected = BAD_ARGUMENTS[case]
    argv = [a.format(export=exported["folder"], tmp=tmp_path) for a in argv]
    capsys.readouterr()
    try:
        code = _app_main()([*argv, "--savedir", str(tmp_path / "saved")])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and expected in err[0]


def test_screenshot_command_picks_an_example_and_saves_the_page(exported, tmp_path, capsys):
    shot = tmp_path / "docs" / "app.png"
    argv = ["--source", str(exported["folder"]), "--examples", str(exported["run"])]
    argv += ["--savedir", str(tmp_path / "saved"), "--port", "0", "--screenshot", str(shot)]
    code = _app_main()(argv)
    assert code == 0 and f"saved {shot}" in capsys.readouterr().out
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 30000
