"""Write a listening test's results: a markdown table (results.md), the numbers (results.json)
and a picture (ratings.png), each written atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from interpreters.data._io import write_text_atomic
from interpreters.room.listening import stats

MUSHRA_NOTE = (
    "Means over listener x clip ratings of the kept listeners, with 95 % Student t-intervals "
    "(each rating one observation; listener effects are not modelled). Pairwise: Wilcoxon "
    "signed-rank tests on ratings paired by listener and trial, Holm-corrected over all pairs "
    "of methods, significant at 0.05. Screening: a listener who rates the hidden reference "
    f"below {stats.SCREEN_BELOW:g} in more than {100 * stats.SCREEN_SHARE:g} % of their trials "
    "is excluded. Correlation: Spearman's rho over (trial, method) points between the kept "
    "listeners' mean rating and SI-SDR (dB, higher = closer) and log-spectral distance (dB, "
    "lower = closer; STFT 512/256 Hann, 80 dB floor) of the sound against the metric reference."
)
AB_NOTE = (
    "Preference rate of the first method of each pair over listener x trial choices, with "
    "exact (Clopper-Pearson) 95 % intervals; two-sided binomial sign test of no preference, "
    "Holm-corrected over pairs, significant at 0.05 (choices of one listener are treated as "
    "independent)."
)


def number(value: float | None, digits: int = 1) -> str:
    """A table cell: the value rounded, or a dash when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def p_value(value: float) -> str:
    """A p-value cell: three digits, or an upper bound when it is tiny."""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def mushra_markdown(results: dict) -> str:
    """The MUSHRA results page: screening, means, pairwise tests, correlations."""
    kept = len(results["listeners"]) - len(results["excluded"])
    lines = [
        f"# Listening test ({results['set']}, MUSHRA): {len(results['listeners'])} listeners, "
        f"{kept} kept, {results['trials']} trials",
        "",
        "## Listener screening",
        "",
    ]
    if results["screening"]:
        rows = [
            [
                name,
                str(s["trials"]),
                str(s["below"]),
                number(100 * s["share"]),
                "excluded" if s["excluded"] else "kept",
            ]
            for name, s in results["screening"].items()
        ]
        lines += table(["listener", "trials", "reference < 90", "%", "verdict"], rows)
    else:
        lines.append("No hidden reference in this test (the set has no true stems): not screened.")
    rows = [
        [name, str(m["n"]), number(m["mean"]), f"[{number(m['low'])}, {number(m['high'])}]"]
        for name, m in results["means"].items()
    ]
    lines += ["", "## Ratings (0-100)", ""]
    lines += table(["condition", "ratings", "mean", "95 % CI (t)"], rows)
    rows = [
        [
            t["a"],
            t["b"],
            str(t["pairs"]),
            number(t["median_difference"]),
            number(t["W"]),
            p_value(t["p"]),
            p_value(t["p_holm"]),
            "yes" if t["different"] else "no",
        ]
        for t in results["pairwise"]
    ]
    lines += ["", "## Pairwise tests (Wilcoxon signed-rank, Holm)", ""]
    header = ["A", "B", "pairs", "median A-B", "W", "p", "p (Holm)", "different"]
    lines += table(header, rows) if rows else ["One method only: no pairs to test."]
    rows = [
        [metric, number(c["rho"], 2), number(c["p"], 3), str(c["points"])]
        for metric, c in results["correlation"].items()
    ]
    lines += [
        "",
        f"## Ratings vs objective metrics (against the {results['metric_reference']})",
        "",
    ]
    lines += table(["metric", "Spearman rho", "p", "points"], rows)
    return "\n".join([*lines, "", MUSHRA_NOTE, ""])


def ab_markdown(results: dict) -> str:
    """The A/B results page: preference per pair, win rate per method."""
    rows = [
        [
            p["a"],
            p["b"],
            str(p["trials"]),
            str(p["wins_a"]),
            number(100 * p["rate"]),
            f"[{number(100 * p['low'])}, {number(100 * p['high'])}]",
            p_value(p["p"]),
            p_value(p["p_holm"]),
            "yes" if p["different"] else "no",
        ]
        for p in results["pairs"]
    ]
    lines = [
        f"# Listening test ({results['set']}, A/B): {len(results['listeners'])} listeners, "
        f"{results['trials']} trials",
        "",
        "## Preferences per pair",
        "",
    ]
    header = ["A", "B", "choices", "A preferred", "% A", "95 % CI", "p", "p (Holm)", "different"]
    lines += table(header, rows)
    rows = [
        [
            name,
            str(o["trials"]),
            str(o["wins"]),
            number(100 * o["rate"]),
            f"[{number(100 * o['low'])}, {number(100 * o['high'])}]",
        ]
        for name, o in results["overall"].items()
    ]
    lines += ["", "## Win rate per method", ""]
    lines += table(["method", "choices", "preferred", "%", "95 % CI"], rows)
    return "\n".join([*lines, "", AB_NOTE, ""])


def plot(results: dict, path: Path) -> None:
    """MUSHRA: means with their intervals, and ratings against SI-SDR; A/B: preference rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if results["mode"] == "mushra":
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
        names = list(results["means"])
        means = [results["means"][n]["mean"] for n in names]
        errors = [
            [m - results["means"][n]["low"] for n, m in zip(names, means)],
            [results["means"][n]["high"] - m for n, m in zip(names, means)],
        ]
        left.bar(range(len(names)), means, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
        left.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        left.set_ylim(0, 100)
        left.set_ylabel("rating (mean, 95 % CI)")
        for method in dict.fromkeys(p["condition"] for p in results["points"]):
            shown = [p for p in results["points"] if p["condition"] == method]
            right.scatter([p["SI-SDR"] for p in shown], [p["rating"] for p in shown], label=method)
        rho = results["correlation"]["SI-SDR"]["rho"]
        right.set_title(f"Spearman rho = {number(rho, 2)}", fontsize=10)
        right.set_xlabel(f"SI-SDR vs the {results['metric_reference']} (dB)")
        right.set_ylabel("mean rating of the clip")
        right.set_ylim(0, 100)
        if results["points"]:
            right.legend(fontsize=8)
    else:
        fig, left = plt.subplots(figsize=(7, 4))
        pairs = results["pairs"]
        rates = [100 * p["rate"] for p in pairs]
        errors = [
            [r - 100 * p["low"] for r, p in zip(rates, pairs)],
            [100 * p["high"] - r for r, p in zip(rates, pairs)],
        ]
        left.bar(range(len(pairs)), rates, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
        left.axhline(50, color="grey", linestyle="--", linewidth=1)
        labels = [f"{p['a']}\nover {p['b']}" for p in pairs]
        left.set_xticks(range(len(pairs)), labels, fontsize=8)
        left.set_ylim(0, 100)
        left.set_ylabel("% preferred (95 % CI)")
    fig.tight_layout()
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(out: Path, results: dict) -> list[str]:
    """results.md, results.json and ratings.png in ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = mushra_markdown(results) if results["mode"] == "mushra" else ab_markdown(results)
    paths = [out / "results.md", out / "results.json", out / "ratings.png"]
    write_text_atomic(paths[0], markdown)
    write_text_atomic(paths[1], as_json(results))
    plot(results, paths[2])
    return [str(path) for path in paths]


def as_json(results: dict) -> str:
    """The results as JSON, NaN written as null."""

    def clean(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(results), indent=2) + "\n"
