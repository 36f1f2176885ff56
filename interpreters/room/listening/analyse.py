"""Analyse a listening test's answers: listener screening, mean ratings with 95 % t-intervals,
Wilcoxon signed-rank tests between methods (Holm), Spearman correlation of ratings with SI-SDR
and log-spectral distance; for A/B tests, preference rates with exact binomial intervals."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from interpreters.room.listening import stats
from interpreters.room.listening.build import HIDDEN_REFERENCE
from interpreters.room.listening.store import all_answers, load_key, load_test

ALPHA = 0.05
LSD_FFT, LSD_HOP = 512, 256  # the STFT of the log-spectral distance (Hann window)


def rating_rows(test: dict, key: dict, records: dict[str, dict]) -> list[dict]:
    """One row per listener, trial and condition: the MUSHRA rating, unblinded by the key."""
    rows = []
    for listener, record in records.items():
        for trial_id, answer in record["answers"].items():
            trial_key = key["trials"][trial_id]
            for name, rating in answer.get("ratings", {}).items():
                condition = trial_key["sounds"][name]
                rows.append(
                    {
                        "listener": listener,
                        "trial": trial_id,
                        "clip": trial_key["clip"],
                        "condition": condition,
                        "rating": float(rating),
                    }
                )
    return rows


def screen_listeners(rows: list[dict]) -> dict[str, dict]:
    """Each listener against the hidden-reference rule (none when the test has no hidden
    reference, i.e. on sets without true stems)."""
    by_listener = defaultdict(list)
    for row in rows:
        if row["condition"] == HIDDEN_REFERENCE:
            by_listener[row["listener"]].append(row["rating"])
    return {listener: stats.screen(ratings) for listener, ratings in sorted(by_listener.items())}


def condition_means(rows: list[dict], conditions: list[str]) -> dict[str, dict]:
    """Per condition: number of ratings, mean and 95 % t-interval over listener x clip."""
    summary = {}
    for condition in conditions:
        values = [row["rating"] for row in rows if row["condition"] == condition]
        mean, low, high = stats.t_interval(values)
        summary[condition] = {"n": len(values), "mean": mean, "low": low, "high": high}
    return summary


def paired(rows: list[dict], a: str, b: str) -> tuple[list[float], list[float]]:
    """Ratings of conditions a and b by the same listener in the same trial, paired."""
    cells = defaultdict(dict)
    for row in rows:
        cells[(row["listener"], row["trial"])][row["condition"]] = row["rating"]
    both = [cell for _, cell in sorted(cells.items()) if a in cell and b in cell]
    return [cell[a] for cell in both], [cell[b] for cell in both]


def pairwise_tests(rows: list[dict], methods: list[str]) -> list[dict]:
    """Wilcoxon signed-rank test of every pair of methods on paired ratings, Holm-corrected
    over all pairs."""
    tests = []
    for a, b in itertools.combinations(methods, 2):
        ratings_a, ratings_b = paired(rows, a, b)
        statistic, p = stats.wilcoxon_signed_rank(ratings_a, ratings_b)
        difference = np.subtract(ratings_a, ratings_b)
        median = float(np.median(difference)) if len(difference) else math.nan
        tests.append(
            {
                "a": a,
                "b": b,
                "pairs": len(ratings_a),
                "median_difference": median,
                "W": statistic,
                "p": p,
            }
        )
    for test, adjusted in zip(tests, stats.holm([t["p"] for t in tests])):
        test["p_holm"] = adjusted
        test["different"] = adjusted < ALPHA
    return tests


def trial_metrics(folder: Path, trial: dict, trial_key: dict, methods: list[str]) -> dict:
    """SI-SDR (dB) and log-spectral distance (dB) of each method's sound in one trial against
    the trial's metric reference (the true stem, else the input), by method."""
    import torch

    from interpreters.audio import FrontEnd, load_audio
    from interpreters.evaluation.metrics import log_spectral_distance, si_sdr

    shown = {s["name"]: folder / s["file"] for s in trial["sounds"]}
    names = [name for name in shown if trial_key["sounds"][name] in methods]
    reference_path = folder / trial_key["metric_reference"]
    rate = sf.info(str(reference_path)).samplerate
    reference = load_audio(reference_path, rate)
    sounds = torch.stack([fit(load_audio(shown[name], rate), len(reference)) for name in names])
    references = reference.expand_as(sounds)
    front_end = FrontEnd(rate, n_fft=LSD_FFT, hop_length=LSD_HOP)
    sdr = si_sdr(sounds, references)
    lsd = log_spectral_distance(front_end.stft(sounds).abs(), front_end.stft(references).abs())
    return {
        trial_key["sounds"][name]: {"SI-SDR": float(sdr[i]), "LSD": float(lsd[i])}
        for i, name in enumerate(names)
    }


def fit(wav, length: int):
    """A waveform cut or zero-padded to ``length`` samples."""
    import torch

    if len(wav) >= length:
        return wav[:length]
    return torch.nn.functional.pad(wav, (0, length - len(wav)))


def rated_points(folder: Path, test: dict, key: dict, rows: list[dict]) -> list[dict]:
    """One point per trial and method: the mean rating of the kept listeners and the sound's
    SI-SDR and log-spectral distance."""
    by_point = defaultdict(list)
    for row in rows:
        by_point[(row["trial"], row["condition"])].append(row["rating"])
    points = []
    for trial in test["trials"]:
        metrics = trial_metrics(folder, trial, key["trials"][trial["id"]], key["methods"])
        for method, values in metrics.items():
            ratings = by_point.get((trial["id"], method))
            if ratings:
                points.append(
                    {
                        "trial": trial["id"],
                        "condition": method,
                        **values,
                        "rating": float(np.mean(ratings)),
                    }
                )
    return points


def correlations(points: list[dict]) -> dict[str, dict]:
    """Spearman correlation, over (trial, method) points, of the mean rating with each
    objective metric of the same sound."""
    ratings = [point["rating"] for point in points]
    result = {}
    for metric in ("SI-SDR", "LSD"):
        rho, p = stats.spearman(ratings, [point[metric] for point in points])
        result[metric] = {"rho": rho, "p": p, "points": len(points)}
    return result


def analyse_mushra(folder: Path, test: dict, key: dict, records: dict) -> dict:
    """Every MUSHRA result: screening, kept listeners' means, pairwise tests, correlations."""
    rows = rating_rows(test, key, records)
    screening = screen_listeners(rows)
    excluded = sorted(name for name, s in screening.items() if s["excluded"])
    kept = [row for row in rows if row["listener"] not in excluded]
    points = rated_points(folder, test, key, kept)
    return {
        "mode": "mushra",
        "listeners": sorted(records),
        "excluded": excluded,
        "screening": screening,
        "means": condition_means(kept, key["conditions"]),
        "pairwise": pairwise_tests(kept, key["methods"]),
        "correlation": correlations(points),
        "metric_reference": key["metric_reference"],
        "points": points,
    }


def preferences(test: dict, key: dict, records: dict) -> list[dict]:
    """One row per listener and A/B trial: the two methods shown and the one preferred."""
    rows = []
    for listener, record in records.items():
        for trial_id, answer in record["answers"].items():
            sounds = key["trials"][trial_id]["sounds"]
            if "choice" in answer:
                rows.append(
                    {
                        "listener": listener,
                        "trial": trial_id,
                        "pair": sorted(sounds.values()),
                        "winner": sounds[answer["choice"]],
                    }
                )
    return rows


def analyse_ab(test: dict, key: dict, records: dict) -> dict:
    """A/B results: per pair of methods, the preference rate of the first with its exact 95 %
    interval and the two-sided sign test (Holm over pairs); per method its overall win rate."""
    rows = preferences(test, key, records)
    pairs = []
    for a, b in itertools.combinations(key["methods"], 2):
        shown = [row for row in rows if row["pair"] == sorted([a, b])]
        wins = sum(row["winner"] == a for row in shown)
        pairs.append(
            {
                "a": a,
                "b": b,
                "trials": len(shown),
                "wins_a": wins,
                **stats.binomial(wins, len(shown)),
            }
        )
    for pair, adjusted in zip(pairs, stats.holm([p["p"] for p in pairs])):
        pair["p_holm"] = adjusted
        pair["different"] = adjusted < ALPHA
    overall = {}
    for method in key["methods"]:
        shown = [row for row in rows if method in row["pair"]]
        wins = sum(row["winner"] == method for row in shown)
        overall[method] = {"trials": len(shown), "wins": wins, **stats.binomial(wins, len(shown))}
    return {"mode": "ab", "listeners": sorted(records), "pairs": pairs, "overall": overall}


def analyse_test(folder: str | Path, out: str | Path | None = None) -> dict:
    """Analyse every answer of a test; write results.md, results.json and ratings.png into
    ``out`` (default <test>/analysis) and return the results."""
    from interpreters.room.listening.report import write_report

    folder = Path(folder)
    test, key = load_test(folder), load_key(folder)
    records = all_answers(folder, test)
    if test["mode"] == "mushra":
        results = analyse_mushra(folder, test, key, records)
    else:
        results = analyse_ab(test, key, records)
    results.update({"set": test["set"], "trials": len(test["trials"]), "test": test["id"]})
    results["files"] = write_report(Path(out) if out else folder / "analysis", results)
    return results
