"""Out-of-distribution evaluation sets built from any test manifest, after the L-MAC protocol.

Each clip of the manifest is contaminated by another clip of a different class ("mixtures"),
by the clip of another class whose spectrum is closest to it, shifted in time to overlap it most,
at −5…+5 dB ("overlap": a harder ground truth, the two stems share time and frequency and each
keeps its own background), white noise, speech (a folder such as LJSpeech's wavs/, or speech made locally with espeak-ng)
or a noise folder (WHAM!-style). Every item keeps its two stems (the scaled clip and the scaled
contaminant, summing exactly to the written mixture), so the ground-truth metrics of
interpreters/brain.py apply unchanged. Sets are written once under ``<prepared_folder>/ood``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import soundfile as sf

from interpreters.audio import load_audio
from interpreters.data._io import (
    check_existing,
    ensure_writable,
    item_rng,
    write_float_wav,
    write_json_atomic,
)
from interpreters.errors import InterpreterError

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("mixtures", "overlap", "white_noise", "speech", "noise")
# Upstream L-MAC weights of the L2-normalised clip and contaminant: 0.8 x + 0.2 y for mixtures,
# x + 0.5 n for the noises. An SNR, when given, replaces them.
DEFAULT_WEIGHTS: dict[str, tuple[float, float] | None] = {
    "mixtures": (0.8, 0.2),
    "overlap": None,  # an SNR drawn per item from OVERLAP_SNR_RANGE
    "white_noise": (1.0, 0.5),
    "speech": (1.0, 0.5),
    "noise": (1.0, 0.5),
}
OVERLAP_SNR_RANGE = (-5.0, 5.0)
OVERLAP_CANDIDATES = 8  # clips of other classes compared for spectral overlap, per item
_VERSION = 1
_STREAMS = {kind: 10 + i for i, kind in enumerate(KINDS)}  # apart from the synth streams
_STREAMS["overlap"] = 15  # added later: the other kinds keep their streams
_ESPEAK_STREAM = 20
_SUBSET_STREAM = 21
_ESPEAK_POOL = 24
_ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029")
_ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
_WORDS = (
    "the quick brown fox jumps over a lazy dog while seven bright birds sing near the old "
    "river and children laugh in the warm morning light people talk about music weather "
    "trains coffee history science and small gardens behind every quiet house in town"
).split()
_AUDIO_EXTENSIONS = {f".{name.lower()}" for name in sf.available_formats()} | {".oga"}


def _file_digest(path: str) -> str:
    """SHA-256 of a file, so a changed source manifest is not mistaken for the old one."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _audio_files(folder: str, key: str) -> list[str]:
    """All soundfile-readable files under ``folder``, sorted so draws are reproducible."""
    if not os.path.isdir(folder):
        raise InterpreterError(f"{key} {folder} is not a folder; set {key} to a folder of audio")
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if os.path.splitext(name)[1].lower() in _AUDIO_EXTENSIONS
    )
    if not files:
        raise InterpreterError(
            f"{key} {folder} holds no audio files; set {key} to a folder of wavs"
        )
    return files


def _segment(rng: np.random.Generator, signal: np.ndarray, n: int) -> np.ndarray:
    """A random ``n``-sample crop of ``signal``, tiled first when it is shorter."""
    if len(signal) < n:
        signal = np.tile(signal, -(-n // len(signal)))
    start = int(rng.integers(0, len(signal) - n + 1))
    return signal[start : start + n]


def _espeak_pool(seed: int, sample_rate: int) -> list[np.ndarray]:
    """Sentences spoken by espeak-ng with voices, rates and pitches drawn from the seed."""
    if shutil.which("espeak-ng") is None:
        raise InterpreterError(
            "kind 'speech' needs speech_folder or espeak-ng; run `make setup` "
            "(or apt-get install espeak-ng) or set speech_folder to a folder of speech wavs"
        )
    pool = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(_ESPEAK_POOL):
            rng = item_rng(seed, _ESPEAK_STREAM, index)
            words = rng.choice(_WORDS, size=int(rng.integers(8, 15)))
            voice = f"{rng.choice(_ESPEAK_VOICES)}+{rng.choice(_ESPEAK_VARIANTS)}"
            path = os.path.join(tmp, f"{index}.wav")
            command = [
                "espeak-ng",
                "-v",
                voice,
                "-s",
                str(int(rng.integers(120, 200))),
                "-p",
                str(int(rng.integers(20, 80))),
                "-w",
                path,
                " ".join(words),
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0 or not os.path.isfile(path):
                raise InterpreterError(
                    f"espeak-ng failed ({result.stderr.strip()[:200]}); reinstall it with "
                    "`make setup` or set speech_folder"
                )
            pool.append(load_audio(path, sample_rate, resample=True, downmix=True).numpy())
    return pool


class _Contaminants:
    """Draws contaminant signals of one kind, cropped and resampled to a clip's rate/length."""

    def __init__(
        self,
        kind: str,
        entries: dict[str, dict],
        data_root: str,
        sample_rate: int,
        seed: int,
        speech_folder: str | None,
        noise_folder: str | None,
    ) -> None:
        self.kind, self.entries, self.data_root, self.rate = kind, entries, data_root, sample_rate
        self.files: list[str] = []
        self.pool: list[np.ndarray] = []
        if kind == "speech":
            if speech_folder:
                self.files = _audio_files(speech_folder, "speech_folder")
            else:
                self.pool = _espeak_pool(seed, sample_rate)
        elif kind == "noise":
            if not noise_folder:
                raise InterpreterError(
                    "ood kind 'noise' needs noise_folder; set noise_folder to a folder of noise "
                    "recordings (e.g. WHAM! noise) or drop 'noise' from the kinds"
                )
            self.files = _audio_files(noise_folder, "noise_folder")
        elif kind in ("mixtures", "overlap"):
            self.ids = list(entries)

    def draw(
        self, rng: np.random.Generator, label: str, clip: np.ndarray
    ) -> tuple[np.ndarray, str, dict]:
        """Contaminant as long as ``clip``, its label, and extra manifest fields describing it."""
        n = len(clip)
        if self.kind == "white_noise":
            return rng.standard_normal(n), "white_noise", {}
        if self.kind == "overlap":
            return self._overlapping(rng, label, clip)
        if self.kind == "mixtures":
            others = [key for key in self.ids if self.entries[key]["label"] != label]
            if not others:
                raise InterpreterError(
                    "ood kind 'mixtures' needs clips of at least two classes in the manifest"
                )
            other = others[int(rng.integers(len(others)))]
            entry = self.entries[other]
            wav = self._load(entry["wav"].replace("{data_root}", self.data_root))
            extra: dict = {"source2": other}
            if len(wav) == n and "onset" in entry and "offset" in entry:
                extra.update(onset2=entry["onset"], offset2=entry["offset"])  # the whole clip
            return _segment(rng, wav, n), entry["label"], extra
        for _ in range(10):  # a crop may land in silence; try a few others
            if self.pool:
                signal = self.pool[int(rng.integers(len(self.pool)))]
            else:
                signal = self._load(self.files[int(rng.integers(len(self.files)))])
            segment = _segment(rng, signal, n)
            if np.sum(segment.astype(np.float64) ** 2) > 1e-12:
                return segment, self.kind, {}
        raise InterpreterError(f"ood kind {self.kind!r}: contaminant files are silent; check them")

    def _overlapping(
        self, rng: np.random.Generator, label: str, clip: np.ndarray
    ) -> tuple[np.ndarray, str, dict]:
        """Of a few clips of other classes, the one whose spectrum is closest to ``clip``'s,
        circularly shifted so its energy over time overlaps ``clip``'s most."""
        others = [key for key in self.ids if self.entries[key]["label"] != label]
        if not others:
            raise InterpreterError("ood kind 'overlap' needs clips of at least two classes")
        picks = rng.choice(len(others), min(OVERLAP_CANDIDATES, len(others)), replace=False)
        target = _profile(clip)
        best, best_score = None, -np.inf
        for i in picks:
            wav = _fit(self._load(self._path(others[i])), len(clip))
            score = float(np.dot(target[0], _profile(wav)[0]))
            if score > best_score:
                best, best_score = (others[i], wav), score
        key, wav = best
        shift = _best_shift(target[1], _profile(wav)[1], len(clip))
        extra = {"source2": key, "spectral_overlap": best_score, "shift": int(shift)}
        return np.roll(wav, shift), self.entries[key]["label"], extra

    def _path(self, key: str) -> str:
        return self.entries[key]["wav"].replace("{data_root}", self.data_root)

    def _load(self, path: str) -> np.ndarray:
        return load_audio(path, self.rate, resample=True, downmix=True).numpy()


_FRAME = 512  # samples per frame of the overlap profiles


def _fit(wav: np.ndarray, n: int) -> np.ndarray:
    """``wav`` cropped or zero-padded to ``n`` samples."""
    return wav[:n] if len(wav) >= n else np.pad(wav, (0, n - len(wav)))


def _profile(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm mean log-power spectrum, and energy per frame, of a waveform."""
    frames = _fit(wav, -(-len(wav) // _FRAME) * _FRAME).reshape(-1, _FRAME).astype(np.float64)
    power = np.abs(np.fft.rfft(frames * np.hanning(_FRAME), axis=1)) ** 2
    spectrum = np.log1p(power.mean(axis=0) / max(power.mean(), 1e-20))
    return spectrum / max(np.linalg.norm(spectrum), 1e-20), power.sum(axis=1)


def _best_shift(energy: np.ndarray, other: np.ndarray, n: int) -> int:
    """Circular shift (samples) of ``other`` maximising the correlation of frame energies."""
    correlation = np.fft.irfft(np.fft.rfft(energy) * np.conj(np.fft.rfft(other)), len(energy))
    return int(np.argmax(correlation)) * _FRAME % max(n, 1)


def _mix(
    clip: np.ndarray,
    contaminant: np.ndarray,
    weights: tuple[float, float] | None,
    snr_db: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled float32 stems (clip, contaminant) at the weights or SNR, peak-matched to the clip."""
    x = clip.astype(np.float64)
    y = contaminant.astype(np.float64)
    x_norm, y_norm = np.linalg.norm(x), np.linalg.norm(y)
    if snr_db is None:
        w1, w2 = weights
    else:
        w1, w2 = 1.0, 10 ** (-snr_db / 20)
    stem1, stem2 = w1 * x / x_norm, w2 * y / y_norm
    # The L2 normalisation makes clips very quiet; one common gain restores the clip's peak
    # without changing the ratio of the stems.
    gain = np.max(np.abs(x)) / np.max(np.abs(stem1 + stem2))
    return (stem1 * gain).astype(np.float32), (stem2 * gain).astype(np.float32)


def _snr_for(kind: str, snr_db: float | dict[str, float] | None) -> float | None:
    """The SNR asked for ``kind``, or None to use the upstream weights."""
    if isinstance(snr_db, dict):
        value = snr_db.get(kind)
        return None if value is None else float(value)
    return None if snr_db is None else float(snr_db)


def build_ood_sets(
    manifest: str,
    prepared_folder: str,
    sample_rate: int,
    seed: int,
    kinds: Sequence[str],
    speech_folder: str | None = None,
    noise_folder: str | None = None,
    n_items: int | None = None,
    snr_db: float | dict[str, float] | None = None,
    subfolder: str = "ood",
) -> dict[str, str]:
    """Build each OOD set once from ``manifest`` and return {kind: manifest path}.

    Manifests go to ``<prepared_folder>/<subfolder>/<kind>.json`` with wavs beside them, paths
    starting with ``{data_root}`` (= ``prepared_folder``), in the entry format of synth's
    mixtures.json. ``snr_db`` (one value or one per kind) replaces the upstream weights.
    """
    manifest, prepared_folder = os.fspath(manifest), os.fspath(prepared_folder)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise InterpreterError(f"unknown ood kinds {unknown}; choose among {', '.join(KINDS)}")
    if not os.path.isfile(manifest):
        raise InterpreterError(f"manifest {manifest} does not exist; run data preparation first")
    if n_items is not None and n_items < 1:
        raise InterpreterError(f"n_items must be >= 1 or None, got {n_items}")
    entries = _read_manifest(manifest)
    chosen = list(entries)
    if n_items is not None and n_items < len(chosen):  # a seeded subset, kept in manifest order
        picked = item_rng(seed, _SUBSET_STREAM, 0).choice(len(chosen), n_items, replace=False)
        chosen = [chosen[i] for i in sorted(picked)]
    folder = os.path.join(prepared_folder, subfolder)
    digest = _file_digest(manifest)
    paths = {}
    for kind in kinds:
        snr = _snr_for(kind, snr_db)
        config = {
            "kind": kind,
            "source_manifest_sha256": digest,
            "n_items": len(chosen),
            "sample_rate": int(sample_rate),
            "seed": int(seed),
            "weights": None if snr is not None or kind == "overlap" else list(DEFAULT_WEIGHTS[kind]),
            "snr_range": list(OVERLAP_SNR_RANGE) if kind == "overlap" and snr is None else None,
            "snr_db": snr,
            "speech_folder": os.path.abspath(speech_folder)
            if kind == "speech" and speech_folder
            else None,
            "noise_folder": os.path.abspath(noise_folder)
            if kind == "noise" and noise_folder
            else None,
            "version": _VERSION,
        }
        if kind == "speech" and not speech_folder:
            config["speech_source"] = "espeak-ng"
        path = os.path.join(folder, f"{kind}.json")
        paths[kind] = path
        owned = [f"{kind}.json", kind]
        config_name = f"{kind}_config.json"
        remedy = f"delete {kind}.json, {kind}/ and {config_name} there, or pass another subfolder"
        maker = f"build_ood_sets ({kind})"
        if os.path.isdir(folder) and check_existing(
            folder, config, {kind: path}, config_name, owned, maker, remedy
        ):
            logger.info("ood set %s found in %s, skipping", kind, folder)
            continue
        source = _Contaminants(
            kind, entries, prepared_folder, sample_rate, seed, speech_folder, noise_folder
        )
        ensure_writable(os.path.join(folder, kind))
        write_json_atomic(os.path.join(folder, config_name), config)
        out = {}
        for index, key in enumerate(chosen):
            rng = item_rng(seed, _STREAMS[kind], index)
            item = _Item(kind, index, key, entries[key], rng, DEFAULT_WEIGHTS[kind], snr)
            out.update(_build_item(item, source, prepared_folder, subfolder, sample_rate))
        write_json_atomic(path, out)  # last: its presence marks a completed set
        logger.info("ood set %s (%d items) ready in %s", kind, len(out), folder)
    return paths


def _read_manifest(manifest: str) -> dict[str, dict]:
    """Load a SpeechBrain JSON manifest, checking each entry has a wav and a label."""
    try:
        with open(manifest, encoding="utf-8") as handle:
            entries = json.load(handle)
    except ValueError as err:
        raise InterpreterError(
            f"manifest {manifest} is not valid JSON ({err}); rebuild it"
        ) from None
    if not isinstance(entries, dict) or not entries:
        raise InterpreterError(f"manifest {manifest} holds no entries; rebuild it")
    bad = [key for key, entry in entries.items() if "wav" not in entry or "label" not in entry]
    if bad:
        raise InterpreterError(f"manifest {manifest} entry {bad[0]} lacks 'wav' or 'label'")
    return entries


class _Item(NamedTuple):
    """What defines one OOD item: its kind, position, source clip, generator and levels."""

    kind: str
    index: int
    key: str
    entry: dict
    rng: np.random.Generator
    weights: tuple[float, float]
    snr: float | None


def _build_item(
    item: _Item, source: _Contaminants, data_root: str, subfolder: str, sample_rate: int
) -> dict[str, dict]:
    """Write one contaminated clip and its stems; return its manifest entry."""
    kind, index, key, entry, rng, weights, snr = item
    clip = load_audio(
        entry["wav"].replace("{data_root}", data_root), sample_rate, resample=True, downmix=True
    ).numpy()
    if not np.any(clip):
        raise InterpreterError(f"clip {key} of the manifest is silent; remove it from the manifest")
    n = len(clip)
    contaminant, label2, extra = source.draw(rng, entry["label"], clip)
    if kind == "overlap" and snr is None:
        snr = float(rng.uniform(*OVERLAP_SNR_RANGE))
    stem1, stem2 = _mix(clip, contaminant, weights, snr)
    item_id = f"{kind}_{index:05d}_{key}"
    rel = f"{subfolder}/{kind}/{item_id}"
    for signal, suffix in ((stem1 + stem2, ""), (stem1, "_s1"), (stem2, "_s2")):
        write_float_wav(os.path.join(data_root, f"{rel}{suffix}.wav"), signal, sample_rate)
    energy1 = np.sum(stem1.astype(np.float64) ** 2)
    energy2 = np.sum(stem2.astype(np.float64) ** 2)
    duration = n / sample_rate
    result = {
        "wav": f"{{data_root}}/{rel}.wav",
        "label": entry["label"],
        "label1": entry["label"],
        "label2": label2,
        "stem1": f"{{data_root}}/{rel}_s1.wav",
        "stem2": f"{{data_root}}/{rel}_s2.wav",
        "snr_db": float(10 * np.log10(energy1 / energy2)),
        "duration": duration,
        "source": key,
    }
    if "onset" in entry and "offset" in entry:
        result.update(onset1=entry["onset"], offset1=entry["offset"])
    result.update({"onset2": 0.0, "offset2": duration, **extra})
    return {item_id: result}
