"""The interpret command's HTML page: per input, audio players, the picture, top classes and
the faithfulness of its explanation."""

from __future__ import annotations

from pathlib import Path


def write_html_report(
    path: str | Path, entries: list[dict], failed: list[tuple[Path, str]], title: str
) -> Path:
    """One page: per input, audio players, the picture, top classes and faithfulness figures."""
    from html import escape

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sections = [_html_entry(entry) for entry in entries]
    failures = "".join(f"<li>{escape(reason)}</li>" for _, reason in failed)
    path.write_text(
        _HTML_PAGE.format(
            title=escape(title),
            sections="\n".join(sections) or "<p>No file could be explained.</p>",
            failures=f"<h2>Skipped</h2><ul class='failed'>{failures}</ul>" if failed else "",
        )
    )
    return path


def _html_entry(entry: dict) -> str:
    """The section of one explained input."""
    from html import escape

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
        f"<tr><td>{escape(name)}</td><td>{value:.3f}</td></tr>"
        for name, value in entry["faithfulness"].items()
    )
    return (
        f"<section><h2>{escape(entry['name'])} — explaining “{escape(entry['label'])}”</h2>"
        f"<p class='file'>{escape(entry['file'])}</p><div class='players'>{players}</div>"
        f"<img src='{escape(entry['picture'])}' alt='spectrogram and mask'>"
        f"<div class='tables'><table><tr><th>class</th><th>p</th></tr>{top}</table>"
        f"<table><tr><th>faithfulness</th><th></th></tr>{faithfulness}</table></div></section>"
    )


_HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
section {{ border-top: 1px solid #ccc; padding: 1em 0; }}
.players {{ display: flex; gap: 1em; flex-wrap: wrap; }}
figure {{ margin: 0; }} img {{ max-width: 100%; }}
.tables {{ display: flex; gap: 3em; }} td, th {{ padding: 0 .8em; text-align: left; }}
.file {{ color: #666; font-size: 90%; }} .failed {{ color: #a00; }}
</style></head>
<body><h1>{title}</h1>
<p>Listen to the input, to what the explanation keeps (interpretation) and to what it removes
(residual). AI/AD/AG/FF/Fid-In: the classifier's view of the interpretation and residual.</p>
{sections}
{failures}
<script>
// Counts audio elements whose media loaded, so headless checks can read it from the DOM.
const players = Array.from(document.querySelectorAll('audio'));
document.body.dataset.audioTotal = players.length;
document.body.dataset.audioLoaded = 0;
players.forEach(a => a.addEventListener('loadedmetadata', () => {{
  document.body.dataset.audioLoaded = Number(document.body.dataset.audioLoaded) + 1;
}}));
players.forEach(a => a.load());
</script>
</body></html>
"""
