"""The interactive explainer (recipes/app.py): upload or pick a clip, explain it with one or
several loaded interpreters side by side, hear and see each explanation, and weaken or sharpen
its mask without explaining again.

The callbacks are plain functions of ``ExplainerApp`` (tested without a browser); ``build_blocks``
only wires them to gradio components.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from interpreters.errors import InterpreterError
from interpreters.inference.cli import SOUNDS, expand_inputs
from interpreters.inference.interpreter import FileInterpretation, Interpreter
from interpreters.inference.report import axes_caption, verdict_sentence
from interpreters.listening import save_panels_image, write_sounds
from interpreters.room import free_port

DECISION = "the decision"
TOP_CLASSES = 5
STRENGTH_RANGE = (0.0, 4.0, 0.1)  # minimum, maximum, step of the mask-strength slider
NO_CLIP = "Upload a clip or pick an example first."


# ---- loading --------------------------------------------------------------------------------


def load_interpreters(
    sources: list[str], savedir: str | Path | None = None, device: str = "cpu"
) -> dict[str, Interpreter]:
    """Every ``--source`` loaded, by the name the page shows (method and folder or hub id)."""
    loaded: dict[str, Interpreter] = {}
    for index, source in enumerate(sources):
        folder = Path(savedir) / f"{index}_{Path(source).name}" if savedir else None
        interpreter = Interpreter.from_hparams(source, folder, device)
        loaded[unique_name(interpreter_name(interpreter, source), loaded)] = interpreter
    return loaded


def interpreter_name(interpreter: Interpreter, source: str) -> str:
    """'L-MAC (lmac_synth)': the method and the export's folder name (or the hub id)."""
    where = Path(source).name if Path(source).is_dir() else source
    return f"{interpreter.explainer.name} ({where})"


def unique_name(name: str, taken: dict) -> str:
    """``name``, or ``name #2``, ``#3`` ... when another source already has it."""
    candidate, index = name, 1
    while candidate in taken:
        index += 1
        candidate = f"{name} #{index}"
    return candidate


def find_examples(given: list[str], sources: list[str]) -> dict[str, Path]:
    """The clips offered in the page, by the name shown: the files and folders ``given``
    (--examples), then those under a local source's ``examples/`` folder. In a folder of an
    evaluation's examples (``*_input.wav`` beside their interpretations) only the inputs count,
    named by set and clip (``test/test_00001_chirp_up_chirp_up``)."""
    local = [str(Path(s) / "examples") for s in sources if (Path(s) / "examples").is_dir()]
    examples: dict[str, Path] = {}
    seen: set[Path] = set()
    for entry in [*given, *local]:
        files, missing = expand_inputs([entry])
        if missing:
            raise InterpreterError(f"--examples {entry}: {missing[0][1]}")
        inputs = [(path, name) for path, name in files if path.stem.endswith("_input")]
        for path, name in inputs or files:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                examples[unique_name(example_name(name, bool(inputs)), examples)] = path
    return examples


def example_name(name: Path, evaluation: bool) -> str:
    """The name an example is offered by: its path under the folder given, without the
    evaluation layout's ``examples/``, ``wav/`` and ``_input`` when it is one."""
    if not evaluation:
        return str(name)
    parts = [part for part in name.parts if part not in ("examples", "wav")]
    return str(Path(*parts)).removesuffix("_input")


# ---- what to explain -------------------------------------------------------------------------


def target_choices(interpreters: dict[str, Interpreter]) -> list[str]:
    """'the decision', then every class any loaded classifier knows (first seen first)."""
    labels = [label for interpreter in interpreters.values() for label in interpreter.labels]
    return [DECISION, *dict.fromkeys(labels)]


def target_of(
    interpreter: Interpreter, choice: str | None, prompt: str | None = None
) -> str | None:
    """What ``interpreter`` is asked: free text for a zero-shot one when a prompt is given,
    otherwise the class chosen (None: its decision)."""
    if (prompt or "").strip() and interpreter.accepts_prompts:
        return prompt.strip()
    return None if choice in (None, "", DECISION) else choice


def what_is_explained(target: str | None, label: str, labels: list[str]) -> str:
    """How the page names what was explained: the decision, a class asked for, or a free-text
    prompt (whose figures are those of the zero-shot decision ``label``)."""
    if target is None:
        return f"*{label}*, the decision"
    if target in labels or target.strip().isdigit():
        return f"*{label}*, as asked"
    return f"the prompt “{target}” (the figures are for its decision *{label}*)"


# ---- mask strength ---------------------------------------------------------------------------


def strengthened(mask: torch.Tensor, strength: float) -> torch.Tensor:
    """The mask raised to ``strength``: 1 is the explanation as computed, above 1 keeps only
    what the explainer is sure of (0.5 becomes 0.25 at 2), below 1 keeps more, 0 keeps all."""
    return mask.clamp(0.0, 1.0) ** strength


def resynthesise(
    interpreter: Interpreter, result: FileInterpretation, strength: float
) -> dict[str, torch.Tensor]:
    """Input, interpretation and residual under the strengthened mask, through the front end
    with the input's phase; no new explanation (at strength 1 the explainer's own sounds)."""
    if strength == 1.0:
        return result.sounds()
    front_end = interpreter.front_end
    with torch.no_grad():
        spectrum = front_end.analyse(result.wav[None].to(interpreter.device))
        mask = strengthened(result.mask, strength)[None].to(interpreter.device)
        kept, removed = front_end.listenable(spectrum, mask)
    return {"input": result.wav, "interpretation": kept[0].cpu(), "residual": removed[0].cpu()}


def heard(
    interpreter: Interpreter,
    result: FileInterpretation,
    sounds: dict[str, torch.Tensor],
    strength: float,
) -> dict[str, float]:
    """The explained class's probability on input, interpretation and residual: the
    explanation's own figures at strength 1, else the classifier on the resynthesised sounds."""
    if strength == 1.0:
        return result.faithfulness
    return {
        "p_input": result.faithfulness["p_input"],
        "p_interpretation": float(
            interpreter.class_probabilities(sounds["interpretation"])[result.target]
        ),
        "p_residual": float(interpreter.class_probabilities(sounds["residual"])[result.target]),
    }


# ---- what one interpreter's column shows ------------------------------------------------------


@dataclass
class Explained:
    """One interpreter's explanation of the clip, kept so the strength control can reuse it."""

    result: FileInterpretation
    target: str | None  # what was asked (None: the decision)


@dataclass
class View:
    """What one interpreter's column shows: a heading with the verdict (or the one-line error),
    and, when explained, the sounds, the three-panel picture and the top classes."""

    heading: str
    error: str | None = None  # why nothing could be explained (one line)
    sounds: dict[str, Path] | None = None
    picture: Path | None = None
    caption: str = ""
    top: dict[str, float] | None = None


def top_classes(interpreter: Interpreter, result: FileInterpretation) -> dict[str, float]:
    """The classifier's most probable classes on the input, for gr.Label."""
    top = result.probabilities.topk(min(TOP_CLASSES, len(interpreter.labels)))
    return {interpreter.labels[i]: float(p) for p, i in zip(top.values, top.indices)}


def heading(
    name: str, labels: list[str], explained: Explained, figures: dict[str, float], strength: float
) -> str:
    """The column's Markdown: which interpreter explains what, at which strength, the verdict."""
    label = explained.result.label
    what = what_is_explained(explained.target, label, labels)
    return f"### {name}\nExplaining {what}; mask strength {strength:g}.\n\n" + verdict_sentence(
        label, figures, lambda text: f"*{text}*"
    )


def render(
    name: str,
    interpreter: Interpreter,
    explained: Explained,
    strength: float,
    folder: Path,
) -> View:
    """Write the sounds and picture of one explanation at ``strength`` into a fresh folder
    under ``folder`` and describe them (each call its own files: players never show stale ones)."""
    result = explained.result
    sounds = resynthesise(interpreter, result, strength)
    out = Path(tempfile.mkdtemp(prefix="view_", dir=folder))
    stem = f"{result.path.stem}_{interpreter.explainer.name}".replace(" ", "_")
    paths = {kind: out / f"{stem}_{kind}.wav" for kind in SOUNDS}
    write_sounds(paths, sounds, interpreter.sample_rate)
    picture = out / f"{stem}_panels.png"
    save_panels_image(picture, result.compressed, strengthened(result.mask, strength))
    rate = interpreter.sample_rate
    return View(
        heading=heading(
            name,
            interpreter.labels,
            explained,
            heard(interpreter, result, sounds, strength),
            strength,
        ),
        sounds=paths,
        picture=picture,
        caption=axes_caption(len(result.wav) / rate, rate / 2),
        top=top_classes(interpreter, result),
    )


# ---- the callbacks ---------------------------------------------------------------------------


class ExplainerApp:
    """The loaded interpreters, the example clips and a folder for the files the page plays."""

    def __init__(self, interpreters: dict[str, Interpreter], examples: dict[str, Path]) -> None:
        if not interpreters:
            raise InterpreterError("no interpreter loaded; give at least one --source")
        self.interpreters = interpreters
        self.examples = examples
        self.folder = Path(tempfile.mkdtemp(prefix="interpreters-app-"))

    def example(self, name: str | None) -> str | None:
        """The file of the example called ``name`` (None when there is none)."""
        return str(self.examples[name]) if name in self.examples else None

    def explain(
        self,
        clip: str | None,
        chosen: list[str],
        choice: str | None,
        prompt: str | None,
        strength: float,
    ) -> tuple[str, dict[str, Explained], dict[str, View]]:
        """Explain ``clip`` with every chosen interpreter: a status line, the explanations (for
        the strength control) and each column's view; a bad file or target is one line, shown
        in the page."""
        if not clip:
            return NO_CLIP, {}, {}
        explained, views = {}, {}
        for name in chosen or []:
            interpreter = self.interpreters[name]
            target = target_of(interpreter, choice, prompt)
            try:
                result = interpreter.interpret_file(clip, target)
            except InterpreterError as err:
                views[name] = View(heading=f"### {name}\n⚠ {err}", error=str(err))
                continue
            explained[name] = Explained(result, target)
            views[name] = render(name, interpreter, explained[name], strength, self.folder)
        return status(clip, chosen, explained, views), explained, views

    def restrength(self, explained: dict[str, Explained], strength: float) -> dict[str, View]:
        """Each explanation's view at a new mask strength, from its mask (no explaining)."""
        return {
            name: render(name, self.interpreters[name], item, strength, self.folder)
            for name, item in explained.items()
        }

    def close(self) -> None:
        """Remove the files written for the page."""
        shutil.rmtree(self.folder, ignore_errors=True)


def status(
    clip: str, chosen: list[str], explained: dict[str, Explained], views: dict[str, View]
) -> str:
    """The line above the columns: what was explained, or the one reason nothing could be."""
    if not chosen:
        return "Choose at least one interpreter."
    if explained:
        return f"Explained {Path(clip).name} with {len(explained)} of {len(chosen)} interpreter(s)."
    reasons = {view.error for view in views.values()}
    return f"⚠ {reasons.pop()}" if len(reasons) == 1 else "⚠ No interpreter could explain it."


# ---- the page --------------------------------------------------------------------------------

INTRO = """# Explain a classifier in sound
Upload a clip (any format soundfile reads) or pick an example, choose the interpreters and what
to explain. The **interpretation** is the part of the sound the explanation says the classifier
used, the **residual** what it removed; a faithful explanation is still heard as the class from
the interpretation alone. **Mask strength** raises the mask to a power without explaining again:
1 is the explanation as computed, higher keeps only what the explainer is sure of, 0 keeps all.
"""

CSS = ".verdict p { font-size: 1.05em; }"


@dataclass
class Column:
    """The gradio components of one interpreter's column."""

    box: object
    heading: object
    players: dict[str, object]
    picture: object
    caption: object
    top: object
    download: object

    def outputs(self) -> list:
        """The components a callback updates, in ``updates`` order."""
        return [
            self.box,
            self.heading,
            *self.players.values(),
            self.picture,
            self.caption,
            self.top,
            self.download,
        ]


def updates(view: View | None) -> list:
    """gradio updates of one column for ``view`` (None: hidden)."""
    import gradio as gr

    if view is None:
        return [gr.update(visible=False), *[gr.update()] * 8]
    sounds = view.sounds or {}
    shown = view.sounds is not None
    return [
        gr.update(visible=True),
        gr.update(value=view.heading),
        *(gr.update(value=str(sounds[k]) if shown else None, visible=shown) for k in SOUNDS),
        gr.update(value=str(view.picture) if shown else None, visible=shown),
        gr.update(value=view.caption, visible=shown),
        gr.update(value=view.top, visible=shown),
        gr.update(value=str(sounds.get("interpretation", "")) or None, visible=shown),
    ]


def column(name: str, visible: bool) -> Column:
    """The components of one interpreter's column (built inside a gr.Blocks context)."""
    import gradio as gr

    with gr.Column(visible=visible, variant="panel") as box:
        heading_md = gr.Markdown(f"### {name}", elem_classes="verdict")
        browser_player = gr.WaveformOptions(show_recording_waveform=False)  # a real <audio>
        players = {
            kind: gr.Audio(
                label=kind, type="filepath", visible=False, waveform_options=browser_player
            )
            for kind in SOUNDS
        }
        picture = gr.Image(
            label="spectrogram · mask · what the mask keeps", format="png", visible=False
        )
        caption = gr.Markdown(visible=False)
        top = gr.Label(label="top classes", num_top_classes=TOP_CLASSES, visible=False)
        download = gr.DownloadButton("download the interpretation (wav)", visible=False)
    return Column(box, heading_md, players, picture, caption, top, download)


def build_blocks(app: ExplainerApp):
    """The page: the clip, interpreter, target and strength controls, one column per loaded
    interpreter (hidden when not chosen), wired to ``app``'s callbacks."""
    import gradio as gr

    names = list(app.interpreters)
    zero_shot = any(i.accepts_prompts for i in app.interpreters.values())
    with gr.Blocks(
        title="Explain a classifier in sound",
        analytics_enabled=False,
        delete_cache=(3600, 3600),  # gradio's copies of the page's files go when it closes
    ) as blocks:
        gr.Markdown(INTRO)
        with gr.Row():
            upload = gr.File(label="upload a clip", type="filepath", elem_id="upload")
            with gr.Column():
                example = gr.Dropdown(
                    list(app.examples),
                    value=None,
                    label="or pick an example",
                    elem_id="example",
                    visible=bool(app.examples),
                )
                chosen = gr.CheckboxGroup(names, value=names, label="interpreters")
            with gr.Column():
                choice = gr.Dropdown(
                    target_choices(app.interpreters), value=DECISION, label="explain"
                )
                prompt = gr.Textbox(
                    label="or describe a sound (zero-shot interpreters)", visible=zero_shot
                )
                strength = gr.Slider(
                    *STRENGTH_RANGE[:2],
                    value=1.0,
                    step=STRENGTH_RANGE[2],
                    label="mask strength (mask ** strength; no new explanation)",
                )
                button = gr.Button("Explain", variant="primary")
        message = gr.Markdown(NO_CLIP, elem_id="status")
        clip, state = gr.State(None), gr.State({})
        with gr.Row(equal_height=False):
            columns = {name: column(name, True) for name in names}
        outputs = [c for name in names for c in columns[name].outputs()]

        def on_explain(path, chosen_names, asked_for, text, power):
            line, explained, views = app.explain(path, chosen_names, asked_for, text, power)
            return [line, explained, *flat(names, views, chosen_names)]

        def on_strength(explained, power):
            return flat(names, app.restrength(explained, power))

        explaining = {
            "fn": on_explain,
            "inputs": [clip, chosen, choice, prompt, strength],
            "outputs": [message, state, *outputs],
        }
        uploaded = upload.upload(lambda path: (path, None), upload, [clip, example])
        uploaded.then(**explaining)
        picked = example.input(lambda name: (app.example(name), None), example, [clip, upload])
        picked.then(**explaining)
        upload.clear(lambda: None, outputs=clip)
        gr.on([button.click, choice.input, prompt.submit, chosen.input], **explaining)
        # every value the slider or its number box takes; while one is resynthesised only the
        # latest waiting one runs next
        strength.change(on_strength, [state, strength], outputs, trigger_mode="always_last")
    return blocks


def flat(names: list[str], views: dict[str, View], chosen: list[str] | None = None) -> list:
    """Every column's updates in page order: those with a view show it, those not ``chosen``
    are hidden, the rest are left as they are."""
    import gradio as gr

    result = []
    for name in names:
        if name in views:
            result += updates(views[name])
        elif chosen is not None and name not in chosen:
            result += updates(None)
        else:
            result += [gr.update()] * 9
    return result


# ---- serving ---------------------------------------------------------------------------------


def launch(blocks, app: ExplainerApp, host: str = "127.0.0.1", port: int | None = None) -> str:
    """Serve the page in a background thread; returns its URL (``blocks.close()`` stops it).
    ``port`` None: gradio's first free one from 7860; 0: any free one."""
    blocks.queue(default_concurrency_limit=1)  # one explanation at a time on the CPU
    _, url, _ = blocks.launch(
        server_name=host,
        server_port=free_port(host) if port == 0 else port,
        prevent_thread_lock=True,
        quiet=True,
        share=False,
        ssr_mode=False,
        allowed_paths=[str(app.folder)],
        footer_links=[],
        css=CSS,
    )
    return url


# ---- driving the page in headless chromium (the screenshot command and the browser test) -----

VERDICT = "The input is heard as"
EXPLAINED_JS = """([players, verdicts, verdict]) => {
  const audio = Array.from(document.querySelectorAll('audio')).filter(a => a.src);
  const shown = document.body.innerText.split(verdict).length - 1;
  return audio.length >= players && audio.every(a => a.readyState >= 1) && shown >= verdicts;
}"""


def open_page(page, url: str) -> None:
    """Load the app in ``page`` and wait until gradio has drawn it."""
    page.goto(url)
    page.wait_for_selector("#status")


def upload_clip(page, path: str | Path) -> None:
    """Upload ``path`` through the page's file input (what a user's file dialog does), after
    clearing the file shown, as a user does (the input is there only while the box is empty)."""
    shown = page.locator("#upload button[aria-label='Clear']")
    if shown.count():
        shown.click()
    page.set_input_files("#upload input[type=file]", str(path))


def pick_example(page, name: str) -> None:
    """Choose the example called ``name`` in the examples dropdown."""
    page.click("#example input")
    page.get_by_role("option", name=name, exact=True).click()


def wait_for_explanation(page, interpreters: int, timeout_s: float = 120) -> None:
    """Wait until ``interpreters`` columns show their verdict and every player its metadata."""
    page.wait_for_function(
        EXPLAINED_JS, arg=[3 * interpreters, interpreters, VERDICT], timeout=timeout_s * 1000
    )


def screenshot(url: str, path: str | Path, example: str, interpreters: int) -> Path:
    """Pick ``example``, wait for every chosen interpreter's explanation, save a full-page PNG."""
    from interpreters.room.browser import browser_page

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with browser_page(width=1280, height=900) as page:
        open_page(page, url)
        pick_example(page, example)
        wait_for_explanation(page, interpreters)
        page.screenshot(path=str(path), full_page=True)
        if page.console_errors:
            raise InterpreterError(f"the page logged errors: {page.console_errors[0]}")
    return path
