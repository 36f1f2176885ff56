"""Result tables: metrics.json (every value) and metrics.md (the chosen columns)."""

from __future__ import annotations

import json
from pathlib import Path

from interpreters.evaluation.metrics import format_table


def write_metrics(
    folder: str | Path, rows: dict[str, dict[str, float]], columns: list[str], note: str = ""
) -> tuple[Path, Path]:
    """Write ``metrics.json`` (all values) and ``metrics.md`` (the chosen columns, then
    ``note`` saying how to read them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "metrics.json", folder / "metrics.md"
    json_path.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    present = [c for c in columns if any(c in row for row in rows.values())]
    md_path.write_text(format_table(rows, present) + "\n" + (f"\n{note}\n" if note else ""))
    return json_path, md_path
