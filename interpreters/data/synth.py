"""The embedded default dataset "synth": procedurally generated sound events.

Eleven classes of synthetic events (tones, sweeps, noises, clicks, vowels, ...) are rendered with
numpy, deterministically from a seed, into ``data_folder`` with SpeechBrain JSON manifests, plus a
set of two-event mixtures whose ground-truth stems sum exactly to the mixture. Nothing is
downloaded, so every recipe has data to run on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
import soundfile as sf
from tqdm import tqdm

from interpreters.data._io import (
    check_existing,
    ensure_writable,
    item_rng,
    write_float_wav,
    write_json_atomic,
)
from interpreters.errors import InterpreterError

logger = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = (
    "tone_burst",
    "chirp_up",
    "chirp_down",
    "noise_burst",
    "click_train",
    "vowel",
    "siren",
    "band_noise",
    "tweet",
    "knock",
    "buzz",
)


# Bump when a generator changes, so folders made by older code are not silently reused.
_GENERATOR_VERSION = 1
_CONFIG_NAME = "synth_config.json"
_SPLITS = ("train", "valid", "test")
_MIXTURES = "mixtures"
# Independent seed streams: SeedSequence(seed, spawn_key=(stream, item)) for every item.
_STREAMS = {"train": 0, "valid": 1, "test": 2, _MIXTURES: 3}

_Generator = Callable[[np.random.Generator, int, int], np.ndarray]


# ---------------------------------------------------------------------------------------------
# Signal helpers (all vectorised over samples; loops only run over a handful of bursts/formants)
# ---------------------------------------------------------------------------------------------


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    """Draw from a log-uniform distribution, the natural prior for frequencies."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _fmax(sample_rate: int) -> float:
    """Highest frequency a generator may use, safely below Nyquist to avoid aliasing."""
    return 0.45 * sample_rate


def _ramps(n: int, ramp: int) -> np.ndarray:
    """Envelope of ones with raised-cosine fade-in and fade-out of ``ramp`` samples each."""
    env = np.ones(n)
    ramp = int(min(ramp, n // 2))
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        env[:ramp] = rise
        env[n - ramp :] = rise[::-1]
    return env


def _spread(rng: np.random.Generator, n: int, lengths: np.ndarray) -> np.ndarray:
    """Start samples placing bursts in order, the first at 0 and the last ending at ``n``."""
    lengths = np.minimum(lengths.astype(int), n)
    if len(lengths) == 1:
        return np.zeros(1, dtype=int)
    free = max(n - int(lengths.sum()), 0)
    weights = rng.uniform(0.5, 1.5, len(lengths) - 1)
    gaps = np.floor(free * weights / weights.sum()).astype(int)
    starts = np.concatenate([[0], np.cumsum(lengths[:-1] + gaps)])
    starts[-1] = n - lengths[-1]
    return np.clip(starts, 0, n - 1)


def _phase(freq: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Integrate an instantaneous-frequency contour (Hz) into a phase with a random start."""
    return 2 * np.pi * np.cumsum(freq) / sample_rate + rng.uniform(0, 2 * np.pi)


def _harmonics(phase: np.ndarray, amps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sum of ``amps[k] * sin((k + 1) * phase + random phase)``: a harmonic stack on a contour."""
    orders = np.arange(1, len(amps) + 1)[:, None]
    offsets = rng.uniform(0, 2 * np.pi, (len(amps), 1))
    return amps @ np.sin(orders * phase[None, :] + offsets)


def _bandpass(x: np.ndarray, sample_rate: int, low: float, high: float) -> np.ndarray:
    """Band-limit ``x`` with an FFT mask whose edges are smooth on a log-frequency axis."""
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    log_f = np.log2(np.maximum(freqs, 1e-3))
    width = 0.08  # octaves: a gentle skirt rather than a brick wall
    mask = np.ones_like(freqs)
    if low > 0:
        mask /= 1 + np.exp(-(log_f - np.log2(low)) / width)
    if high < sample_rate / 2:
        mask /= 1 + np.exp(-(np.log2(high) - log_f) / width)
    return np.fft.irfft(np.fft.rfft(x) * mask, n=len(x))


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pink (1/f power) noise with unit RMS, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    scale = np.arange(len(spec), dtype=float)
    scale[0] = np.inf
    x = np.fft.irfft(spec / np.sqrt(scale), n=n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


# ---------------------------------------------------------------------------------------------
# One generator per class: (rng, sample_rate, n) -> float64 body of n samples, any scale
# ---------------------------------------------------------------------------------------------


def _tone_burst(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """One to three steady sinusoid bursts with soft raised-cosine edges."""
    freq = min(_loguniform(rng, 250, 2500), _fmax(sr))
    count = int(rng.integers(1, 4))
    lengths = np.full(count, n) if count == 1 else n / count * rng.uniform(0.5, 0.85, count)
    starts = _spread(rng, n, lengths)
    ramp = int(rng.uniform(0.01, 0.04) * sr)
    env = np.zeros(n)
    for start, length in zip(starts, lengths.astype(int)):
        length = min(length, n - start)
        env[start : start + length] += _ramps(length, ramp)
    phase = _phase(np.full(n, freq), sr, rng)
    second = rng.uniform(0, 0.25) if 2 * freq < _fmax(sr) else 0.0
    return env * _harmonics(phase, np.array([1.0, second]), rng)


def _chirp(rng: np.random.Generator, sr: int, n: int, up: bool) -> np.ndarray:
    """A single linear or exponential sweep over the body, upward or downward."""
    fmax = _fmax(sr)
    f_low = _loguniform(rng, 150, min(1200, fmax / 2))
    f_high = min(f_low * rng.uniform(2, 6), fmax)
    ramp = np.arange(n) / max(n - 1, 1)
    if rng.random() < 0.5:
        freq = f_low + (f_high - f_low) * ramp
    else:
        freq = f_low * (f_high / f_low) ** ramp
    if not up:
        freq = freq[::-1]
    second = rng.uniform(0, 0.2) if 2 * f_high < fmax else 0.0
    env = _ramps(n, int(rng.uniform(0.01, 0.03) * sr))
    return env * _harmonics(_phase(freq, sr, rng), np.array([1.0, second]), rng)


def _chirp_up(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Upward sweep."""
    return _chirp(rng, sr, n, up=True)


def _chirp_down(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Downward sweep."""
    return _chirp(rng, sr, n, up=False)


def _noise_burst(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Broadband noise bursts with a fast attack and exponential decay."""
    tau = rng.uniform(0.015, 0.08) * sr
    burst = int(min(n, 5 * tau))
    fit = max(n // max(burst, 1), 1)
    count = int(rng.integers(max(1, fit // 3), fit + 1))
    lengths = np.full(count, burst)
    starts = _spread(rng, n, lengths)
    env = np.zeros(n)
    for start in starts:
        length = min(burst, n - start)
        t = np.arange(length)
        attack = max(int(rng.uniform(0.001, 0.005) * sr), 1)
        decay = np.exp(-np.maximum(t - attack, 0) / (tau * rng.uniform(0.7, 1.3)))
        env[start : start + length] += np.minimum(t / attack, 1.0) * decay * rng.uniform(0.6, 1)
    noise = _bandpass(
        rng.standard_normal(n), sr, rng.uniform(20, 300), _loguniform(rng, 3000, sr / 2)
    )
    return env * noise


def _click_train(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A periodic train of short clicks (impulses through a brief damped resonance)."""
    rate = max(_loguniform(rng, 6, 60), 2.5 * sr / n)
    period = sr / rate
    times = np.arange(0, n, period)
    times = times + rng.uniform(-0.03, 0.03, len(times)) * period
    times = np.clip(np.round(times), 0, n - 1).astype(int)
    train = np.zeros(n)
    train[times] = rng.uniform(0.7, 1.0, len(times))
    centre = min(_loguniform(rng, 1500, 5000), _fmax(sr))
    tau = rng.uniform(0.0003, 0.0015) * sr
    t = np.arange(int(8 * tau) + 1)
    kernel = np.exp(-t / tau) * np.sin(2 * np.pi * centre * t / sr)
    kernel[0] += rng.uniform(0.2, 0.6)  # some of the raw impulse: clicks filtered only a little
    return np.convolve(train, kernel)[:n]


def _vowel(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A harmonic stack on a vibrato f0 (100-300 Hz) shaped by 2-3 formant resonances."""
    t = np.arange(n) / sr
    f0 = _loguniform(rng, 100, 300)
    vibrato = rng.uniform(0.005, 0.03) * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    drift = rng.uniform(-0.05, 0.05) * (2 * t / max(t[-1], 1e-9) - 1)
    contour = f0 * (1 + vibrato + drift)
    orders = np.arange(1, int(min(5000, _fmax(sr)) / (f0 * 1.1)) + 1)
    centres = [rng.uniform(300, 900), rng.uniform(1000, 2300), rng.uniform(2400, 3300)]
    centres = centres[: int(rng.integers(2, 4))]
    weights = [1.0, rng.uniform(0.4, 0.9), rng.uniform(0.2, 0.6)]
    shape = np.full(len(orders), 0.02)
    for centre, weight in zip(centres, weights):
        bandwidth = rng.uniform(60, 150)
        shape += weight / (1 + ((orders * f0 - centre) / bandwidth) ** 2)
    amps = shape / orders**0.5
    env = _ramps(n, int(rng.uniform(0.02, 0.06) * sr))
    return env * _harmonics(_phase(contour, sr, rng), amps, rng)


def _siren(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A warbling tone: slow (2-8 Hz) sinusoidal FM with a large depth."""
    t = np.arange(n) / sr
    fmax = _fmax(sr)
    centre = min(_loguniform(rng, 400, 1500), fmax / 1.5)
    depth = rng.uniform(0.15, 0.4)
    rate = rng.uniform(min(max(2.0, 1.0 / max(t[-1], 1e-9)), 8.0), 8.0)  # >= 1 cycle if it can
    freq = centre * (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    amps = np.array([1.0, rng.uniform(0, 0.3)]) if 2 * centre * (1 + depth) < fmax else [1.0]
    env = _ramps(n, int(rng.uniform(0.02, 0.06) * sr))
    return env * _harmonics(_phase(freq, sr, rng), np.asarray(amps), rng)


def _band_noise(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Stationary noise limited to a random band (centre 250-5000 Hz, 0.25-1.5 octaves)."""
    centre = min(_loguniform(rng, 250, 5000), _fmax(sr) / 1.2)
    octaves = rng.uniform(0.25, 1.5)
    low = centre * 2 ** (-octaves / 2)
    high = min(centre * 2 ** (octaves / 2), _fmax(sr))
    env = _ramps(n, int(rng.uniform(0.02, 0.1) * sr))
    return env * _bandpass(rng.standard_normal(n), sr, low, high)


def _tweet(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Repeated short bird-like syllables: fast 2-6 kHz sweeps with quick vibrato."""
    fmax = 0.9 * _fmax(sr)
    f_high = min(rng.uniform(3500, 6000), fmax)
    f_low = min(rng.uniform(2000, max(f_high - 1000, 2000)), f_high)
    f_start, f_end = (f_high, f_low) if rng.random() < 0.65 else (f_low, f_high)
    syllable = max(min(int(rng.uniform(0.03, 0.12) * sr), n), 1)
    period = syllable + int(rng.uniform(0.02, 0.12) * sr)
    pos = np.arange(n)
    index, local = np.divmod(pos, period)
    inside = local < syllable
    u = np.minimum(local / syllable, 1.0)
    wobble = rng.uniform(0, 300) * np.sin(2 * np.pi * rng.uniform(40, 120) * pos / sr)
    freq = f_start + (f_end - f_start) * u + wobble
    level = rng.uniform(0.6, 1.0, int(index[-1]) + 1)[index]
    env = np.sin(np.pi * u) ** 2 * inside * level
    return env * np.sin(_phase(freq, sr, rng))


def _knock(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A few knocks: impacts exciting 1-3 damped low resonances (80-600 Hz)."""
    modes = int(rng.integers(1, 4))
    freqs = np.array([_loguniform(rng, 80, 600) for _ in range(modes)])
    taus = rng.uniform(0.015, 0.07, modes) * sr
    gains = rng.uniform(0.4, 1.0, modes)
    hit = int(min(n, 5 * taus.max()))
    t = np.arange(hit)
    kernel = np.sum(
        gains[:, None] * np.exp(-t / taus[:, None]) * np.sin(2 * np.pi * freqs[:, None] * t / sr),
        axis=0,
    )
    thump = max(rng.uniform(0.002, 0.005) * sr, 1)
    kernel += rng.uniform(0.1, 0.4) * np.exp(-t / thump) * rng.standard_normal(hit)
    count = int(min(rng.integers(2, 6), max(n // max(hit, 1), 1)))
    starts = _spread(rng, n, np.full(count, hit))
    train = np.zeros(n)
    train[starts] = rng.uniform(0.6, 1.0, count)
    return np.convolve(train, kernel)[:n]


def _buzz(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A harmonic-rich sawtooth or square-like tone (80-300 Hz) with fast amplitude modulation."""
    t = np.arange(n) / sr
    f0 = _loguniform(rng, 80, 300)
    contour = f0 * (1 + rng.uniform(-0.03, 0.03) * (2 * t / max(t[-1], 1e-9) - 1))
    orders = np.arange(1, int(_fmax(sr) / (f0 * 1.05)) + 1)
    amps = orders ** -rng.uniform(0.8, 1.5)  # sawtooth-like, with a random spectral tilt
    if rng.random() < 0.5:
        amps = amps * (orders % 2 == 1)  # square-like: odd harmonics only
    depth = rng.uniform(0.4, 0.9)
    am = 1 - depth * (0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(15, 60) * t))
    env = _ramps(n, int(rng.uniform(0.005, 0.02) * sr)) * am
    return env * _harmonics(_phase(contour, sr, rng), amps, rng)


_GENERATORS: dict[str, _Generator] = {
    "tone_burst": _tone_burst,
    "chirp_up": _chirp_up,
    "chirp_down": _chirp_down,
    "noise_burst": _noise_burst,
    "click_train": _click_train,
    "vowel": _vowel,
    "siren": _siren,
    "band_noise": _band_noise,
    "tweet": _tweet,
    "knock": _knock,
    "buzz": _buzz,
}


# ---------------------------------------------------------------------------------------------
# Events, clips and mixtures
# ---------------------------------------------------------------------------------------------


def _place_event(
    label: str, rng: np.random.Generator, sample_rate: int, n_samples: int
) -> tuple[np.ndarray, int, int]:
    """Render one event of random duration at a random onset; also return onset/offset samples."""
    if label not in _GENERATORS:
        raise InterpreterError(f"unknown synth class {label!r}; choose one of {', '.join(CLASSES)}")
    if n_samples < 1 or sample_rate < 1:
        raise InterpreterError(
            f"need n_samples >= 1 and sample_rate >= 1, got {n_samples}, {sample_rate}"
        )
    shortest = max(int(min(0.3 * sample_rate, 0.6 * n_samples)), 1)
    longest = max(int(0.9 * n_samples), shortest)
    length = int(rng.integers(shortest, longest + 1))
    onset = int(rng.integers(0, n_samples - length + 1))
    body = _GENERATORS[label](rng, sample_rate, length)
    # Fade out so a cut-off body ends without a click; onsets are left to each class's own
    # envelope (clicks and knocks start with an impulse on purpose).
    fade = _ramps(length, int(0.005 * sample_rate))
    fade[: length // 2] = 1.0
    body = body * fade
    peak = np.max(np.abs(body))
    out = np.zeros(n_samples)
    out[onset : onset + length] = body / peak if peak > 0 else body
    return out, onset, onset + length


def generate_event(
    label: str, rng: np.random.Generator, sample_rate: int, n_samples: int
) -> np.ndarray:
    """Render one ``label`` event (random onset, duration, parameters) into a silent signal.

    Returns float32 ``[n_samples]`` with peak 1 and no background; the building block of the set.
    """
    return _place_event(label, rng, sample_rate, n_samples)[0].astype(np.float32)


def _make_clip(
    label: str, rng: np.random.Generator, sample_rate: int, n_samples: int
) -> tuple[np.ndarray, int, int]:
    """One training clip: an event plus pink/white background 25-40 dB down, peak 0.3-0.9.

    The event level is its loudest 25 ms frame, so impulsive and steady classes get comparable
    noise floors (an average RMS would make the floor of sparse knocks a class cue).
    """
    event, onset, offset = _place_event(label, rng, sample_rate, n_samples)
    active = event[onset:offset]
    frame = max(min(int(0.025 * sample_rate), len(active)), 1)
    frames = active[: len(active) // frame * frame].reshape(-1, frame)
    event_level = np.sqrt(np.max(np.mean(frames**2, axis=1)))
    if rng.random() < 0.5:
        background = _pink(rng, n_samples)
    else:
        background = rng.standard_normal(n_samples)
    background *= event_level * 10 ** (-rng.uniform(25, 40) / 20)
    clip = event + background
    clip *= rng.uniform(0.3, 0.9) / np.max(np.abs(clip))
    return clip.astype(np.float32), onset, offset


def _make_mixture(
    index: int,
    rng: np.random.Generator,
    sample_rate: int,
    n_samples: int,
    snr_range: tuple[float, float],
) -> dict:
    """Two events of different classes at a drawn SNR; float32 stems summing to the mixture."""
    first = index % len(CLASSES)
    second = (first + int(rng.integers(1, len(CLASSES)))) % len(CLASSES)
    label1, label2 = CLASSES[first], CLASSES[second]
    stem1, onset1, offset1 = _place_event(label1, rng, sample_rate, n_samples)
    stem2, onset2, offset2 = _place_event(label2, rng, sample_rate, n_samples)
    snr_db = float(rng.uniform(*snr_range))
    stem2 *= np.sqrt(np.sum(stem1**2) / (np.sum(stem2**2) * 10 ** (snr_db / 10)))
    gain = rng.uniform(0.3, 0.9) / np.max(np.abs(stem1 + stem2))
    stem1 = (stem1 * gain).astype(np.float32)
    stem2 = (stem2 * gain).astype(np.float32)
    return {
        "mixture": stem1 + stem2,  # summed in float32 so the stems add up to it exactly
        "stem1": stem1,
        "stem2": stem2,
        "label1": label1,
        "label2": label2,
        "snr_db": snr_db,
        "onsets": (onset1, onset2),
        "offsets": (offset1, offset2),
    }


def _item_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """Generator of one item, independent of every other item and of the split sizes."""
    return item_rng(seed, _STREAMS[stream], index)


# ---------------------------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------------------------


def _check_existing(data_folder: str, config: dict, manifests: dict[str, str]) -> bool:
    """Return True if ``data_folder`` already holds this exact set; raise if it holds another."""
    ours = [*(f"{s}.json" for s in (*_SPLITS, _MIXTURES)), *_SPLITS, _MIXTURES]
    return check_existing(data_folder, config, manifests, _CONFIG_NAME, ours, "synth")


def prepare_synth(
    data_folder: str,
    n_train_per_class: int = 100,
    n_valid_per_class: int = 20,
    n_test_per_class: int = 30,
    n_mixtures: int = 200,
    duration: float = 2.0,
    sample_rate: int = 16000,
    snr_range: tuple[float, float] = (-5.0, 5.0),
    seed: int = 1234,
) -> dict[str, str]:
    """Generate the synth set once into ``data_folder`` and return its four manifest paths.

    Keys: train, valid, test, mixtures. Wav paths in the manifests start with ``{data_root}``.
    """
    data_folder = os.fspath(data_folder)
    counts = {"train": n_train_per_class, "valid": n_valid_per_class, "test": n_test_per_class}
    if min(counts.values()) < 0 or n_mixtures < 0:
        raise InterpreterError("synth split sizes and n_mixtures must be >= 0")
    if sample_rate < 1000 or duration < 0.05:
        raise InterpreterError(
            f"synth needs sample_rate >= 1000 and duration >= 0.05 s, got {sample_rate}, {duration}"
        )
    if len(snr_range) != 2 or snr_range[0] > snr_range[1]:
        raise InterpreterError(f"snr_range must be (low, high) with low <= high, got {snr_range}")
    config = {
        "n_train_per_class": int(n_train_per_class),
        "n_valid_per_class": int(n_valid_per_class),
        "n_test_per_class": int(n_test_per_class),
        "n_mixtures": int(n_mixtures),
        "duration": float(duration),
        "sample_rate": int(sample_rate),
        "snr_range": [float(snr_range[0]), float(snr_range[1])],
        "seed": int(seed),
        "classes": list(CLASSES),
        "generator_version": _GENERATOR_VERSION,
    }
    manifests = {name: os.path.join(data_folder, f"{name}.json") for name in (*_SPLITS, _MIXTURES)}
    if os.path.isdir(data_folder) and _check_existing(data_folder, config, manifests):
        logger.info("synth data found in %s, skipping", data_folder)
        return manifests
    ensure_writable(data_folder)
    write_json_atomic(os.path.join(data_folder, _CONFIG_NAME), config)
    for name in manifests:
        os.makedirs(os.path.join(data_folder, name), exist_ok=True)

    n_samples = round(duration * sample_rate)
    clip_seconds = n_samples / sample_rate
    total = len(CLASSES) * sum(counts.values()) + n_mixtures
    logger.info(
        "Generating %d synth clips and %d mixtures in %s",
        total - n_mixtures,
        n_mixtures,
        data_folder,
    )
    entries: dict[str, dict] = {name: {} for name in manifests}
    with tqdm(total=total, desc="synth data", unit="clip") as progress:
        for split in _SPLITS:
            for index in range(len(CLASSES) * counts[split]):
                label = CLASSES[index % len(CLASSES)]
                clip, onset, offset = _make_clip(
                    label, _item_rng(seed, split, index), sample_rate, n_samples
                )
                item_id = f"{split}_{index:05d}_{label}"
                sf.write(
                    os.path.join(data_folder, split, f"{item_id}.wav"),
                    clip,
                    sample_rate,
                    subtype="PCM_16",
                    format="WAV",
                )
                entries[split][item_id] = {
                    "wav": f"{{data_root}}/{split}/{item_id}.wav",
                    "label": label,
                    "duration": clip_seconds,
                    "onset": onset / sample_rate,
                    "offset": offset / sample_rate,
                }
                progress.update()
        for index in range(n_mixtures):
            mix = _make_mixture(
                index, _item_rng(seed, _MIXTURES, index), sample_rate, n_samples, snr_range
            )
            item_id = f"mix_{index:05d}_{mix['label1']}_{mix['label2']}"
            entry = {
                "wav": f"{{data_root}}/{_MIXTURES}/{item_id}.wav",
                "label": mix["label1"],
                "label1": mix["label1"],
                "label2": mix["label2"],
                "stem1": f"{{data_root}}/{_MIXTURES}/{item_id}_s1.wav",
                "stem2": f"{{data_root}}/{_MIXTURES}/{item_id}_s2.wav",
                "snr_db": mix["snr_db"],
                "duration": clip_seconds,
                "onset1": mix["onsets"][0] / sample_rate,
                "offset1": mix["offsets"][0] / sample_rate,
                "onset2": mix["onsets"][1] / sample_rate,
                "offset2": mix["offsets"][1] / sample_rate,
            }
            for key, suffix in (("mixture", ""), ("stem1", "_s1"), ("stem2", "_s2")):
                path = os.path.join(data_folder, _MIXTURES, f"{item_id}{suffix}.wav")
                write_float_wav(path, mix[key], sample_rate)
            entries[_MIXTURES][item_id] = entry
            progress.update()

    for name, path in manifests.items():  # last: their presence marks a completed generation
        write_json_atomic(path, entries[name])
    logger.info("synth data ready in %s", data_folder)
    return manifests


def class_names() -> list[str]:
    """The synth classes in output order, for yaml (``!apply:...synth.class_names []``)."""
    return list(CLASSES)
