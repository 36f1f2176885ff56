"""File helpers shared by the dataset generators (synth, instruments, out-of-distribution sets).

A generated folder is "written once": a config file records its settings, manifests are written
last and atomically, and float wavs are byte-for-byte deterministic.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable

import numpy as np
import soundfile as sf

from interpreters.errors import InterpreterError

_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile command; the PEAK chunk holds a timestamp


def item_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """Generator of one item, independent of every other item and of the set sizes."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def write_float_wav(path: str, signal: np.ndarray, sample_rate: int) -> None:
    """Write a 32-bit float wav without libsndfile's PEAK chunk, whose timestamp breaks
    byte-for-byte determinism."""
    with sf.SoundFile(path, "w", sample_rate, 1, subtype="FLOAT", format="WAV") as handle:
        lib = getattr(sf, "_snd", None)
        ffi = getattr(sf, "_ffi", None)
        if lib is not None and ffi is not None:
            lib.sf_command(handle._file, _SFC_SET_ADD_PEAK_CHUNK, ffi.NULL, 0)
        handle.write(signal)


def write_json_atomic(path: str | os.PathLike, obj: dict) -> None:
    """Write JSON to a temporary file then rename it, so a reader never sees half a file."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text through a temporary file of this process and a rename: a reader, or another
    process writing the same file, never sees half of it."""
    tmp = f"{os.fspath(path)}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_config(path: str) -> dict | None:
    """Load a generator config, or None when the file is unreadable or not a JSON object."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def check_existing(
    data_folder: str,
    config: dict,
    manifests: dict[str, str],
    config_name: str,
    owned: Iterable[str],
    maker: str,
    remedy: str = "pick another data_folder or delete that one",
    key: str = "data_folder",
) -> bool:
    """Return True if ``data_folder`` already holds this exact set; raise if it holds another.

    ``owned`` names the files/folders the generator writes (to detect foreign data), ``maker``
    the generator, ``remedy`` the fix and ``key`` the yaml key of the folder named in messages.
    """
    config_path = os.path.join(data_folder, config_name)
    if not os.path.isfile(config_path):
        found = [name for name in owned if os.path.exists(os.path.join(data_folder, name))]
        if found:
            raise InterpreterError(
                f"{key} {data_folder} holds {', '.join(found)} but no {config_name}, so "
                f"it was not made by {maker}; {remedy}"
            )
        return False
    existing = read_config(config_path)
    if existing is None:
        raise InterpreterError(
            f"{key} {data_folder} holds a {config_name} that cannot be read as a {maker} "
            f"config; {remedy}"
        )
    differing = sorted(
        key
        for key in config.keys() | existing.keys()
        if config.get(key, None) != existing.get(key, None)
    )
    if differing:
        details = ", ".join(
            f"{key}: {json.dumps(existing.get(key))} there vs {json.dumps(config.get(key))} asked"
            for key in differing
        )
        raise InterpreterError(
            f"{key} {data_folder} holds {maker} data made with other settings ({details}); "
            f"{remedy}"
        )
    return all(os.path.isfile(path) for path in manifests.values())


def ensure_writable(data_folder: str) -> None:
    """Create ``data_folder`` and probe it with a file, failing early with a clear message."""
    try:
        os.makedirs(data_folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_folder):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InterpreterError(
            f"data_folder {data_folder} is not writable: {reason}; "
            "set data_folder to a writable folder"
        ) from exc
