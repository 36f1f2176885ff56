"""Run a listening test in the browser (gradio): a listener gives a name, rates one trial after
another, and every answer is saved to answers/<name>.json before the next trial is shown; the
same name later resumes at the first unanswered trial."""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from interpreters.errors import InterpreterError, first_line
from interpreters.room import free_port
from interpreters.room.listening.store import (
    ANSWERS_FOLDER,
    AUDIO_FOLDER,
    KEY_FILE,
    load_answers,
    load_test,
    next_trial,
    record_answer,
)

INTRO = (
    "## Listening test\n"
    "Each trial plays sounds that explain an audio classifier's decision. Listen to all of "
    "them, then answer. Your answers are saved after every trial: you can stop at any time and "
    "come back with the same name to continue where you left off. Use headphones if you can."
)


def trial_heading(test: dict, index: int, listener: str) -> str:
    """The text above one trial: where the listener is, and the question for its class."""
    trial = test["trials"][index]
    question = test["question"].format(label=trial["label"])
    return (
        f"### Trial {index + 1} of {len(test['trials'])}\n{question}\n\n"
        f"<small>Listener: {listener}. Sounds are named A, B, ... in a new random order "
        "in every trial.</small>"
    )


def player_html(folder: Path, relative: str, label: str) -> str:
    """A labelled plain browser player of one of the test's sounds. Served straight from the
    test's audio folder, not through gradio's cache, whose content-hash folder names would
    tell a curious listener which blind sound equals the reference; no waveform either."""
    url = "gradio_api/file=" + quote(str(folder / relative))
    return (
        f'<div class="listening-player"><div class="listening-label">{escape(label)}</div>'
        f'<audio controls preload="auto" src="{url}" style="width:100%"></audio></div>'
    )


def build_app(folder: str | Path, listener: str | None = None):
    """The test's gradio Blocks: a name page, one page per trial, a thank-you page."""
    import gradio as gr

    folder = Path(folder).resolve()
    test = load_test(folder)
    mushra = test["mode"] == "mushra"
    n_sounds = max(len(trial["sounds"]) for trial in test["trials"])

    with gr.Blocks(title="Listening test") as app:
        listener_state, index_state = gr.State(None), gr.State(None)
        with gr.Column(visible=True) as welcome:
            gr.Markdown(INTRO)
            name = gr.Textbox(label="Your name or listener id", value=listener or "")
            start_button = gr.Button("Start", variant="primary")
        with gr.Column(visible=False) as trial_page:
            heading = gr.Markdown()
            reference = gr.HTML(visible=False)
            context = gr.HTML(visible=False)
            audios, sliders = [], []
            for _ in range(n_sounds):
                with gr.Row(equal_height=True):
                    with gr.Column(scale=3):
                        audios.append(gr.HTML())
                    sliders.append(gr.Slider(0, 100, value=0, step=1, scale=2))
            choice = gr.Radio(label="Your choice", visible=not mushra)
            submit_button = gr.Button("Save and continue", variant="primary")
        with gr.Column(visible=False) as done_page:
            thanks = gr.Markdown()
        message = gr.Markdown()

        def shown(relative: str | None, label: str):
            """A player's update: its sound, or hidden when the trial has none."""
            if relative is None:
                return gr.update(value="", visible=False)
            return gr.update(value=player_html(folder, relative, label), visible=True)

        def show_trial(listener: str, index: int | None, note: str = "") -> dict:
            """What changes to show trial ``index`` (None: the thank-you page)."""
            pages = {welcome: gr.update(visible=False), message: gr.update(value=note)}
            if index is None:
                done = f"## Thank you, {listener}\nAll {len(test['trials'])} trials are answered."
                return {
                    **pages,
                    trial_page: gr.update(visible=False),
                    done_page: gr.update(visible=True),
                    thanks: gr.update(value=done),
                    listener_state: listener,
                    index_state: None,
                }
            trial = test["trials"][index]
            sounds = trial["sounds"] + [None] * (n_sounds - len(trial["sounds"]))
            updates = {
                **pages,
                trial_page: gr.update(visible=True),
                listener_state: listener,
                index_state: index,
                heading: gr.update(value=trial_heading(test, index, listener)),
                reference: shown(
                    trial.get("reference"), f"Reference: the true '{trial['label']}' sound"
                ),
                context: shown(trial.get("input"), "Input (what the classifier heard)"),
                choice: gr.update(
                    choices=[s["name"] for s in trial["sounds"]], value=None, visible=not mushra
                ),
            }
            for audio, slider, sound in zip(audios, sliders, sounds):
                if sound is None:
                    updates[audio] = shown(None, "")
                    updates[slider] = gr.update(value=0, visible=False)
                    continue
                label = f"Sound {sound['name']}"
                updates[audio] = shown(sound["file"], label)
                updates[slider] = gr.update(value=0, label=f"Rating of {label}", visible=mushra)
            return updates

        def start(name: str) -> dict:
            try:
                record = load_answers(folder, test, name)
            except InterpreterError as err:
                return {message: gr.update(value=f"**{first_line(err)}**")}
            done = len(record["answers"])
            note = f"Welcome back: {done} trials already answered." if done else ""
            return show_trial(record["listener"], next_trial(test, record), note)

        def submit(listener: str, index: int, picked: str | None, *ratings: float) -> dict:
            trial = test["trials"][index]
            names = [s["name"] for s in trial["sounds"]]
            if mushra:
                answer = {"ratings": dict(zip(names, ratings))}
            elif picked is None:
                return {message: gr.update(value="**Choose one sound before going on.**")}
            else:
                answer = {"choice": picked}
            try:
                saved = record_answer(folder, test, listener, trial["id"], answer)
            except InterpreterError as err:
                return {message: gr.update(value=f"**{first_line(err)}**")}
            record = load_answers(folder, test, listener)
            note = "" if saved else "That trial was already answered; its first answer is kept."
            return show_trial(listener, next_trial(test, record), note)

        outputs = [listener_state, index_state, welcome, trial_page, done_page, heading, thanks]
        outputs += [message, reference, context, choice, *audios, *sliders]
        start_button.click(start, [name], outputs)
        name.submit(start, [name], outputs)
        submit_button.click(submit, [listener_state, index_state, choice, *sliders], outputs)
    return app


def launch(
    folder: str | Path,
    port: int | None = None,
    listener: str | None = None,
    block: bool = True,
    host: str = "127.0.0.1",
):
    """Serve the test (only its audio folder is reachable: the key and the answers are not);
    blocks until Ctrl+C unless ``block`` is False, then returns the running app (``.close()``)."""
    app = build_app(folder, listener)
    folder = Path(folder).resolve()
    app.launch(
        server_name=host,
        server_port=port or free_port(),
        allowed_paths=[str(folder / AUDIO_FOLDER)],
        blocked_paths=[str(folder / KEY_FILE), str(folder / ANSWERS_FOLDER)],
        prevent_thread_lock=True,
        quiet=True,
        footer_links=[],
    )
    if block:
        print(f"listening test running at {app.local_url} (Ctrl+C stops it)", flush=True)
        try:
            app.block_thread()
        finally:
            app.close()
    return app
