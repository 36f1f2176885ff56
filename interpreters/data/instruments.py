"""The embedded dataset "instruments": real recorded instrument notes from a GM soundfont.

Notes of eleven instrument families (several General MIDI programs each, varied pitch, velocity,
length and onset) are rendered with the fluidsynth command line from the FluidR3 GM soundfont
(Debian's fluid-soundfont-gm, samples of real instruments) into ``data_folder``, with the same
manifests as interpreters/data/synth.py, plus two-family mixtures whose stems sum exactly to the
mixture. Written once, deterministically from a seed.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
from typing import NamedTuple

import numpy as np
import soundfile as sf

from interpreters.data._io import (
    check_existing,
    ensure_writable,
    item_rng,
    write_float_wav,
    write_json_atomic,
)
from interpreters.errors import InterpreterError

logger = logging.getLogger(__name__)

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
_DRUM_CHANNEL = 9
# family: (GM programs, 0-based; lowest and highest MIDI pitch used). For drums the programs are
# kits of bank 128 and the pitches are drawn from _DRUM_KEYS.
FAMILIES: dict[str, tuple[tuple[int, ...], tuple[int, int]]] = {
    "piano": ((0, 1, 2, 3, 4, 5, 6, 7), (36, 96)),
    "mallet": ((8, 9, 10, 11, 12, 13, 14), (60, 96)),
    "organ": ((16, 17, 18, 19, 20, 21, 22), (40, 84)),
    "guitar": ((24, 25, 26, 27, 28, 29, 30), (40, 79)),
    "bass": ((32, 33, 34, 35, 36, 37, 38, 39), (28, 55)),
    "strings": ((40, 41, 42, 44, 45, 48, 49), (45, 84)),
    "brass": ((56, 57, 58, 59, 60, 61, 62), (40, 77)),
    "reed": ((64, 65, 66, 67, 68, 69, 70, 71), (48, 81)),
    "pipe": ((72, 73, 74, 75, 77, 78, 79), (60, 96)),
    "synth_lead": ((80, 81, 82, 83, 84, 85, 86, 87), (45, 84)),
    "drums": ((0, 8, 16, 24, 25, 32, 40, 48), (35, 81)),
}
# Programs whose FluidR3 samples cover less than their family's range (tuba, baritone sax).
_PROGRAM_RANGES = {58: (28, 60), 67: (36, 69)}
_DRUM_KEYS = (35, 36, 37, 38, 39, 40, 41, 42, 44, 45, 46, 47, 49, 50, 51, 52, 54, 55, 56, 57)
_DRUM_KEYS += (
    59,
    60,
    61,
    62,
    63,
    64,
    67,
    68,
    69,
    70,
    73,
    74,
    75,
    76,
    77,
    80,
    81,
)  # no 65-66: TR-808 lacks them
CLASSES: tuple[str, ...] = tuple(FAMILIES)

_GENERATOR_VERSION = 1
_CONFIG_NAME = "instruments_config.json"
_SPLITS = ("train", "valid", "test")
_MIXTURES = "mixtures"
_STREAMS = {"train": 0, "valid": 1, "test": 2, _MIXTURES: 3}
_GAP_MS = 400  # silence after each slot, so released voices never reach the next slot
_CHUNK = 128  # notes per MIDI file; fixed, so chunking never changes the audio
_INSTALL = "run `make setup` or apt-get install fluidsynth fluid-soundfont-gm"


class _Event(NamedTuple):
    """One sound event: a program on a channel playing notes (onset ms, length ms, pitch, vel)."""

    channel: int
    program: int
    notes: list[tuple[int, int, int, int]]


class _Clip(NamedTuple):
    """A split item before rendering: its id, class, event and drawn output level."""

    item_id: str
    label: str
    event: _Event
    level: float


def _draw_event(label: str, rng: np.random.Generator, clip_ms: int) -> _Event:
    """One to three notes of a random program of ``label`` within a random span of the clip."""
    programs, family_range = FAMILIES[label]
    program = int(rng.choice(programs))
    low, high = _PROGRAM_RANGES.get(program, family_range) if label != "drums" else family_range
    shortest = max(int(min(300, 0.6 * clip_ms)), 1)
    longest = max(int(0.9 * clip_ms), shortest)
    span = int(rng.integers(shortest, longest + 1))
    start = int(rng.integers(0, clip_ms - span + 1))
    count = int(rng.integers(1, 4))
    pitch = int(rng.integers(low, high + 1))
    notes = []
    for k in range(count):
        onset = start + k * span // count
        length = max(int(span / count * rng.uniform(0.6, 1.0)), 20)
        if label == "drums":
            pitch = int(rng.choice(_DRUM_KEYS))
        elif k:
            pitch = int(np.clip(pitch + rng.integers(-7, 8), low, high))
        notes.append((onset, length, pitch, int(rng.integers(50, 128))))
    channel = _DRUM_CHANNEL if label == "drums" else 0
    return _Event(channel, program, notes)


def _vlq(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def _write_midi(path: str, events: list[_Event], clip_ms: int) -> None:
    """Format-0 MIDI playing each event in its own slot of clip_ms + _GAP_MS ms (1 tick = 1 ms)."""
    messages: list[tuple[int, int, bytes]] = []  # (ms, order within a time, bytes)
    for slot, event in enumerate(events):
        base, ch = slot * (clip_ms + _GAP_MS), event.channel
        messages.append((base, 0, bytes([0xB0 | ch, 121, 0])))  # reset controllers
        messages.append((base, 0, bytes([0xC0 | ch, event.program])))
        for onset, length, pitch, velocity in event.notes:
            end = min(onset + length, clip_ms)
            messages.append((base + onset, 2, bytes([0x90 | ch, pitch, velocity])))
            messages.append((base + end, 1, bytes([0x80 | ch, pitch, 0])))
        messages.append((base + clip_ms, 1, bytes([0xB0 | ch, 120, 0])))  # all sound off
    messages.sort(key=lambda m: (m[0], m[1]))  # stable: a slot's reset precedes its program
    track = bytearray(b"\x00\xff\x51\x03" + (500000).to_bytes(3, "big"))  # 120 bpm
    now = 0
    for ms, _, data in messages:
        track += _vlq(ms - now) + data
        now = ms
    track += b"\x00\xff\x2f\x00"
    with open(path, "wb") as handle:
        handle.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 500))  # 500 ticks per beat: 1 ms
        handle.write(b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


def _check_tools(soundfont: str) -> None:
    """Fail in one line when fluidsynth or the soundfont is missing."""
    if shutil.which("fluidsynth") is None:
        raise InterpreterError(f"the instruments dataset needs the fluidsynth program; {_INSTALL}")
    if not os.path.isfile(soundfont):
        raise InterpreterError(
            f"soundfont {soundfont} does not exist; {_INSTALL}, or set soundfont to a .sf2 file"
        )


def _render(
    events: list[_Event], soundfont: str, sample_rate: int, clip_ms: int, tmp: str
) -> list[np.ndarray]:
    """Render every event with fluidsynth (chunks in parallel) and cut one mono clip per event."""
    n = round(clip_ms * sample_rate / 1000)
    slot = (clip_ms + _GAP_MS) * sample_rate / 1000
    chunks = [events[i : i + _CHUNK] for i in range(0, len(events), _CHUNK)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    jobs = max(1, min(cores or 1, 4))  # parallel fluidsynth runs; never changes the audio
    clips: list[np.ndarray] = []
    for wave in range(0, len(chunks), jobs):
        running = []
        for c in range(wave, min(wave + jobs, len(chunks))):
            midi, wav = os.path.join(tmp, f"{c}.mid"), os.path.join(tmp, f"{c}.wav")
            _write_midi(midi, chunks[c], clip_ms)
            command = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5"]
            command += ["-r", str(sample_rate), "-O", "float", "-T", "wav", "-F", wav]
            pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
            running.append((c, wav, subprocess.Popen([*command, soundfont, midi], **pipes)))
        for c, wav, process in running:
            _, err = process.communicate()
            if process.returncode != 0 or not os.path.isfile(wav):
                raise InterpreterError(
                    f"fluidsynth failed on {soundfont} ({err.decode(errors='replace')[-200:]}); "
                    f"{_INSTALL}"
                )
            audio, _ = sf.read(wav, dtype="float64", always_2d=True)
            os.remove(wav)
            mono = audio.mean(axis=1)
            for k in range(len(chunks[c])):
                start = round(k * slot)
                clip = np.zeros(n)
                part = mono[start : start + n]
                clip[: len(part)] = part
                clips.append(clip)
    fade = int(0.01 * sample_rate)  # voices are cut at the clip's end: fade instead of a click
    for clip in clips:
        clip[n - fade :] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    return clips


def _active(signal: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Onset and offset (s) of the sound: first and last sample above -60 dB of the peak."""
    loud = np.flatnonzero(np.abs(signal) > 1e-3 * np.max(np.abs(signal)))
    return float(loud[0] / sample_rate), float((loud[-1] + 1) / sample_rate)


def prepare_instruments(
    data_folder: str,
    n_train_per_class: int = 100,
    n_valid_per_class: int = 20,
    n_test_per_class: int = 30,
    n_mixtures: int = 200,
    duration: float = 2.0,
    sample_rate: int = 16000,
    seed: int = 1234,
    soundfont: str | None = None,
    snr_range: tuple[float, float] = (-5.0, 5.0),
) -> dict[str, str]:
    """Render the instruments set once into ``data_folder`` and return its four manifest paths.

    Keys: train, valid, test, mixtures (synth's manifest format, paths start with ``{data_root}``).
    """
    data_folder = os.fspath(data_folder)
    soundfont = os.path.abspath(soundfont or DEFAULT_SOUNDFONT)
    counts = {"train": n_train_per_class, "valid": n_valid_per_class, "test": n_test_per_class}
    if min(counts.values()) < 0 or n_mixtures < 0:
        raise InterpreterError("instruments split sizes and n_mixtures must be >= 0")
    if not 8000 <= sample_rate <= 96000 or duration < 0.1:
        raise InterpreterError(
            "instruments needs 8000 <= sample_rate <= 96000 (fluidsynth's range) and "
            f"duration >= 0.1 s, got {sample_rate}, {duration}"
        )
    if len(snr_range) != 2 or snr_range[0] > snr_range[1]:
        raise InterpreterError(f"snr_range must be (low, high) with low <= high, got {snr_range}")
    config = {
        **{f"n_{split}_per_class": int(count) for split, count in counts.items()},
        "n_mixtures": int(n_mixtures),
        "duration": float(duration),
        "sample_rate": int(sample_rate),
        "snr_range": [float(snr_range[0]), float(snr_range[1])],
        "seed": int(seed),
        "soundfont": soundfont,
        "classes": list(CLASSES),
        "generator_version": _GENERATOR_VERSION,
    }
    manifests = {name: os.path.join(data_folder, f"{name}.json") for name in (*_SPLITS, _MIXTURES)}
    owned = [*(f"{name}.json" for name in manifests), *manifests]
    if os.path.isdir(data_folder) and check_existing(
        data_folder, config, manifests, _CONFIG_NAME, owned, "prepare_instruments"
    ):
        logger.info("instruments data found in %s, skipping", data_folder)
        return manifests
    _check_tools(soundfont)
    ensure_writable(data_folder)
    write_json_atomic(os.path.join(data_folder, _CONFIG_NAME), config)
    for name in manifests:
        os.makedirs(os.path.join(data_folder, name), exist_ok=True)

    clip_ms = round(duration * 1000)
    n_samples = round(clip_ms * sample_rate / 1000)
    seconds = n_samples / sample_rate
    clips: list[_Clip] = []
    for split in _SPLITS:
        for index in range(len(CLASSES) * counts[split]):
            label = CLASSES[index % len(CLASSES)]
            rng = item_rng(seed, _STREAMS[split], index)
            event = _draw_event(label, rng, clip_ms)
            clips.append(_Clip(f"{split}_{index:05d}_{label}", label, event, rng.uniform(0.3, 0.9)))
    mixtures = []
    for index in range(n_mixtures):
        rng = item_rng(seed, _STREAMS[_MIXTURES], index)
        first = index % len(CLASSES)
        second = (first + int(rng.integers(1, len(CLASSES)))) % len(CLASSES)
        labels = (CLASSES[first], CLASSES[second])
        events = [_draw_event(label, rng, clip_ms) for label in labels]
        mixtures.append((index, labels, events, rng.uniform(*snr_range), rng.uniform(0.3, 0.9)))
    logger.info("Rendering %d instrument clips and %d mixtures", len(clips), n_mixtures)
    with tempfile.TemporaryDirectory() as tmp:
        everything = [c.event for c in clips] + [e for m in mixtures for e in m[2]]
        rendered = _render(everything, soundfont, sample_rate, clip_ms, tmp)
    for signal, clip in zip(rendered, clips):
        if not np.any(signal):
            raise InterpreterError(f"soundfont {soundfont} rendered {clip.item_id} silent")

    entries: dict[str, dict] = {name: {} for name in manifests}
    for clip, signal in zip(clips, rendered):
        split = clip.item_id.split("_", 1)[0]
        signal = signal * clip.level / np.max(np.abs(signal))
        sf.write(
            os.path.join(data_folder, split, f"{clip.item_id}.wav"),
            signal.astype(np.float32),
            sample_rate,
            subtype="PCM_16",
            format="WAV",
        )
        onset, offset = _active(signal, sample_rate)
        entries[split][clip.item_id] = {
            "wav": f"{{data_root}}/{split}/{clip.item_id}.wav",
            "label": clip.label,
            "duration": seconds,
            "onset": onset,
            "offset": offset,
        }
    for k, (index, (label1, label2), _, snr_db, level) in enumerate(mixtures):
        stem1, stem2 = rendered[len(clips) + 2 * k], rendered[len(clips) + 2 * k + 1]
        if not (np.any(stem1) and np.any(stem2)):
            raise InterpreterError(f"soundfont {soundfont} rendered mixture {index} silent")
        stem2 = stem2 * np.sqrt(np.sum(stem1**2) / (np.sum(stem2**2) * 10 ** (snr_db / 10)))
        gain = level / np.max(np.abs(stem1 + stem2))
        stems = {"stem1": (stem1 * gain).astype(np.float32)}
        stems["stem2"] = (stem2 * gain).astype(np.float32)
        stems["mixture"] = stems["stem1"] + stems["stem2"]  # float32 sum: stems add up exactly
        item_id = f"mix_{index:05d}_{label1}_{label2}"
        times = [_active(stems[key], sample_rate) for key in ("stem1", "stem2")]
        entries[_MIXTURES][item_id] = {
            "wav": f"{{data_root}}/{_MIXTURES}/{item_id}.wav",
            "label": label1,
            "label1": label1,
            "label2": label2,
            "stem1": f"{{data_root}}/{_MIXTURES}/{item_id}_s1.wav",
            "stem2": f"{{data_root}}/{_MIXTURES}/{item_id}_s2.wav",
            "snr_db": float(snr_db),
            "duration": seconds,
            "onset1": times[0][0],
            "offset1": times[0][1],
            "onset2": times[1][0],
            "offset2": times[1][1],
        }
        for key, suffix in (("mixture", ""), ("stem1", "_s1"), ("stem2", "_s2")):
            path = os.path.join(data_folder, _MIXTURES, f"{item_id}{suffix}.wav")
            write_float_wav(path, stems[key], sample_rate)

    for name, path in manifests.items():  # last: their presence marks a completed generation
        write_json_atomic(path, entries[name])
    logger.info("instruments data ready in %s", data_folder)
    return manifests


def class_names() -> list[str]:
    """The instrument families in output order, for yaml (``!apply:...class_names []``)."""
    return list(CLASSES)
