"""The interpret command's HTML page, readable without the papers: what each figure means and
which way is better, a sortable summary across files, then per input its players, picture, top
classes and the classifier's view of what the explanation keeps and removes."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path

from interpreters.data._io import write_text_atomic

# name: (what it means for one file, which way is better)
FIGURES = {
    "p_input": ("probability of the explained class on the whole input", ""),
    "p_interpretation": (
        "probability of the explained class on the interpretation alone (what the mask keeps)",
        "higher: the kept part carries the evidence",
    ),
    "p_residual": (
        "probability of the explained class on the residual (what the mask removes)",
        "lower: little evidence was left out",
    ),
    "AD": (
        "average drop: share of the input's probability lost on the interpretation, 0 to 100 %",
        "lower",
    ),
    "AI": (
        "average increase: 100 when the interpretation is heard as the class more confidently "
        "than the input (by more than 0.001), else 0",
        "higher",
    ),
    "AG": ("average gain: the rise in probability on the interpretation, 0 to 100 %", "higher"),
    "FF": (
        "faithfulness: probability lost when the kept part is removed (input − residual)",
        "higher",
    ),
    "Fid-In": ("1 when the interpretation gets the same decision as the input, else 0", "higher"),
}
SHOWN_PER_FILE = ("p_input", "p_interpretation", "p_residual", "AD", "FF")


def write_html_report(
    path: str | Path, entries: list[dict], failed: list[tuple[Path, str]], title: str
) -> Path:
    """Write the page through a temporary file, so a reader (or a concurrent run) never sees
    half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    failures = "".join(f"<li>{escape(reason)}</li>" for _, reason in failed)
    page = _HTML_PAGE.format(
        title=escape(title),
        intro=_intro(entries),
        glossary=_glossary(),
        summary=_summary(entries) if entries else "<p>No file could be explained.</p>",
        sections="\n".join(_html_entry(entry) for entry in entries),
        failures=f"<h2>Skipped in the last run</h2><ul class='failed'>{failures}</ul>"
        if failed
        else "",
    )
    write_text_atomic(path, page)
    return path


def _intro(entries: list[dict]) -> str:
    """What the page shows, the interpreters used (linked to their metrics) and the audio rate."""
    sources = sorted({entry.get("source", "") for entry in entries} - {""})
    rates = sorted({entry.get("sample_rate") for entry in entries} - {None})
    links = ", ".join(_source_link(source) for source in sources) or "–"
    rate = " / ".join(f"{r} Hz" for r in rates) or "the classifier's rate"
    return (
        "<p>Each input was explained for one class: the <b>interpretation</b> is the part of "
        "the sound the explanation says the classifier used, the <b>residual</b> is what it "
        "removed. A faithful explanation is still heard as the class from the interpretation "
        "alone, and much less from the residual.</p>"
        f"<p>Interpreter: {links}. {_rate_sentence(entries, rate)}</p>"
    )


def _rate_sentence(entries: list[dict], rate: str) -> str:
    """At which rate the sounds are written, and what happened above the classifier's band."""
    own = [entry["above_nyquist"] for entry in entries if entry.get("above_nyquist") is not None]
    if not own:
        return (
            f"Every sound on this page is written at {rate}, the classifier's rate, whatever "
            "the input's own rate (--own_rate writes them at the input's)."
        )
    band = "kept in the interpretation" if all(own) else "moved to the residual"
    return (
        f"Sounds are written at each input's own rate ({rate}); the band above the classifier's "
        f"Nyquist frequency, which it never heard, is {band}."
    )


def _source_link(source: str) -> str:
    """The interpreter, linked to its model card (which holds the run's metrics) when known."""
    card = Path(source) / "README.md"
    if card.is_file():
        return f"<a href='{escape(card.resolve().as_uri())}'>{escape(source)}</a> (metrics)"
    if source.count("/") == 1:
        url = f"https://huggingface.co/{source}"
        return f"<a href='{escape(url)}'>{escape(source)}</a> (metrics)"
    return escape(source)


def _glossary() -> str:
    """One row per figure: what it means and which way is better."""
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(meaning)}</td><td>{escape(better)}</td></tr>"
        for name, (meaning, better) in FIGURES.items()
    )
    return (
        "<details><summary>What the figures mean</summary><table class='glossary'>"
        f"<tr><th>figure</th><th>meaning</th><th>better</th></tr>{rows}</table></details>"
    )


def _summary(entries: list[dict]) -> str:
    """One row per file; a click on a header sorts by that column."""
    head = "".join(
        f"<th onclick='sortBy(this)'>{name}</th>"
        for name in ("file", "explained", "decision", "confidence", *SHOWN_PER_FILE[1:])
    )
    rows = []
    for entry in entries:
        top_label, top_p = entry["top"][0]
        figures = entry["faithfulness"]
        cells = [
            f"<td><a href='#{escape(entry['name'])}'>{escape(entry['name'])}</a></td>",
            f"<td>{escape(entry['label'])}</td>",
            f"<td>{escape(top_label)}</td>",
            f"<td>{top_p:.3f}</td>",
            *(f"<td>{figures.get(name, float('nan')):.3f}</td>" for name in SHOWN_PER_FILE[1:]),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<table id='summary'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def verdict_sentence(
    label: str, figures: dict[str, float], mark: Callable[[str], str] = str
) -> str:
    """The explanation's faithfulness in one sentence a non-expert reads (the report's and the
    app's); ``mark`` sets the class name off (HTML italics, Markdown emphasis)."""
    p_input, p_kept = figures["p_input"], figures["p_interpretation"]
    share = f" ({p_kept / p_input:.2f} times that confidence)" if p_input >= 0.01 else ""
    return (
        f"The input is heard as {mark(label)} with probability {p_input:.2f}; the kept part "
        f"alone with {p_kept:.2f}{share}, the removed part with {figures['p_residual']:.2f}."
    )


def axes_caption(seconds: float, nyquist: float) -> str:
    """What each panel of the bare three-panel picture is, and its axes."""
    return (
        "left to right: the input's spectrogram (log1p |X|), the mask (0 dark to 1 yellow), "
        f"what the mask keeps; each panel 0–{seconds:.2f} s across, 0–{nyquist / 1000:g} kHz "
        "bottom to top"
    )


def _verdict(entry: dict) -> str:
    """The verdict sentence of one entry as a paragraph."""
    if "p_interpretation" not in entry["faithfulness"]:  # entries written before these existed
        return ""
    sentence = verdict_sentence(
        entry["label"], entry["faithfulness"], lambda label: f"<i>{escape(label)}</i>"
    )
    return f"<p class='verdict'>{sentence}</p>"


def _axes(entry: dict) -> str:
    """The caption of a bare three-panel picture."""
    axes = entry.get("picture_axes")
    return f"<p class='axes'>{escape(axes_caption(*axes))}</p>" if axes else ""


def _html_entry(entry: dict) -> str:
    """The section of one explained input."""
    players = "".join(
        f"<figure><figcaption>{kind}</figcaption>"
        f"<audio controls preload='auto' src='{escape(src)}'></audio></figure>"
        for kind, src in entry["audio"].items()
    )
    top = "".join(
        f"<tr><td>{escape(label)}</td><td>{probability:.3f}</td></tr>"
        for label, probability in entry["top"]
    )
    faithfulness = "".join(
        f"<tr><td title='{escape(FIGURES.get(name, ('', ''))[0])}'>{escape(name)}</td>"
        f"<td>{value:.3f}</td><td>{escape(FIGURES.get(name, ('', ''))[1])}</td></tr>"
        for name, value in entry["faithfulness"].items()
    )
    asked = entry.get("asked")
    why = f"asked for: {escape(str(asked))}" if asked is not None else "the decision"
    return (
        f"<section id='{escape(entry['name'])}'><h2>{escape(entry['name'])} — explaining "
        f"“{escape(entry['label'])}” ({why})</h2>"
        f"<p class='file'>{escape(entry['file'])}</p>{_verdict(entry)}"
        f"<div class='players'>{players}</div>"
        f"<img src='{escape(entry['picture'])}' alt='spectrogram and mask'>{_axes(entry)}"
        f"<div class='tables'><table><tr><th>class</th><th>probability</th></tr>{top}</table>"
        f"<table><tr><th>figure</th><th>value</th><th>better</th></tr>{faithfulness}</table>"
        "</div></section>"
    )


_HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
section {{ border-top: 1px solid #ccc; padding: 1em 0; }}
.players {{ display: flex; gap: 1em; flex-wrap: wrap; }}
figure {{ margin: 0; }} img {{ max-width: 100%; }}
.tables {{ display: flex; gap: 3em; }} td, th {{ padding: 0 .8em; text-align: left; }}
#summary th {{ cursor: pointer; }} .glossary td {{ vertical-align: top; }}
.file, .axes {{ color: #666; font-size: 90%; }} .failed {{ color: #a00; }}
</style></head>
<body><h1>{title}</h1>
{intro}
{glossary}
<h2>All files</h2>
{summary}
{sections}
{failures}
<script>
// Sorts the summary by a column (numbers numerically); a second click reverses.
function sortBy(th) {{
  const table = th.closest('table'), index = Array.from(th.parentNode.children).indexOf(th);
  const body = table.tBodies[0], rows = Array.from(body.rows);
  const key = r => {{ const t = r.cells[index].textContent; const n = parseFloat(t);
                      return isNaN(n) ? t : n; }};
  const down = th.dataset.order !== 'asc';
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (down ? 1 : -1));
  th.dataset.order = down ? 'asc' : 'desc';
  rows.forEach(r => body.appendChild(r));
}}
// Counts audio elements whose media loaded, so headless checks can read it from the DOM.
const players = Array.from(document.querySelectorAll('audio'));
document.body.dataset.audioTotal = players.length;
document.body.dataset.audioLoaded = 0;
players.forEach(a => a.addEventListener('loadedmetadata', () => {{
  document.body.dataset.audioLoaded = Number(document.body.dataset.audioLoaded) + 1;
}}));
players.forEach(a => a.load());
const images = Array.from(document.querySelectorAll('img'));
document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
window.addEventListener('load', () => {{
  document.body.dataset.imagesLoaded =
    images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesTotal = images.length;
}});
</script>
</body></html>
"""
