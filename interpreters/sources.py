"""Pretrained folders and hub ids, fetched through SpeechBrain so both take the same path.

A source is a local folder or a Hugging Face hub id holding ``hyperparams.yaml`` plus one
``<name>.ckpt`` per module. When the hub cannot be reached we say so within seconds instead of
letting the download client retry for half a minute.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path
from urllib.parse import urlparse

import torch
from speechbrain.utils.fetching import FetchConfig, LocalStrategy, fetch

from interpreters.errors import InterpreterError, first_line

HUB_PROBE_SECONDS = 3.0


def is_local(source: str) -> bool:
    """True when ``source`` names a path on disk rather than a hub id ("owner/name")."""
    if Path(source).exists() or source.startswith((".", "/", "~")):
        return True
    return source.count("/") != 1


def hub_reachable() -> bool:
    """Whether the hub completes a TLS handshake quickly (an endpoint that accepts TCP but not
    TLS would otherwise cost half a minute of retries); False when HF_HUB_OFFLINE is set."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname, endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS) as sock:
            if endpoint.scheme != "http":
                context = ssl.create_default_context()
                with context.wrap_socket(sock, server_hostname=host):
                    pass
            return True
    except (OSError, ssl.SSLError):
        return False


def unreachable_message(source: str, key: str) -> str:
    """One line for a source that is neither a local folder nor fetchable from the hub."""
    if source.count("/") == 1 and not source.startswith("http"):
        local = f" and there is no local folder {source}"
    else:
        local = ""
    return (
        f"{key} {source} could not be fetched: the hub cannot be reached (offline){local}; "
        f"check the path, or download it and set {key} to the local folder"
    )


def fetch_files(
    source: str,
    names: list[str],
    savedir: str | Path,
    key: str,
    subfolder: str = "",
    extra: tuple[str, ...] = (),
    hyperparams: bool = True,
) -> dict[str, Path]:
    """Collect hyperparams.yaml (unless ``hyperparams`` is False), one <name>.ckpt per name and
    the ``extra`` files from ``source`` (or its ``subfolder``) into ``savedir``; local paths
    keyed by name / filename.

    Errors name ``key`` and what to do.
    """
    source = str(source)
    prefix = f"{subfolder}/" if subfolder else ""
    filenames = {
        **({"hyperparams": prefix + "hyperparams.yaml"} if hyperparams else {}),
        **{name: f"{prefix}{name}.ckpt" for name in names},
        **{filename: prefix + filename for filename in extra},
    }
    if is_local(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise InterpreterError(
                f"{key} {source} is not a folder; train it first or point {key} at a folder "
                "holding hyperparams.yaml and the .ckpt files"
            )
        missing = [f for f in filenames.values() if not (folder / f).is_file()]
        if missing:
            raise InterpreterError(
                f"{key} {source} lacks {', '.join(missing)}; export it with recipes/export.py "
                "(or use the pretrained/ folder recipes/train.py writes) or copy the missing "
                "files there"
            )
        source = str(folder.resolve())
        config = FetchConfig()
    else:
        config = FetchConfig(allow_network=hub_reachable())
    try:
        fetched = {}
        for name, filename in filenames.items():
            relative = filename[len(prefix) :]  # files inside a subfolder keep their own path
            (Path(savedir) / relative).parent.mkdir(parents=True, exist_ok=True)
            fetched[name] = Path(
                fetch(
                    filename,
                    source,
                    savedir=savedir,
                    save_filename=relative,
                    fetch_config=config,
                    local_strategy=LocalStrategy.SYMLINK,
                )
            )
        return fetched
    except Exception as err:
        if not config.allow_network:
            raise InterpreterError(unreachable_message(source, key)) from None
        raise InterpreterError(
            f"{key} {source} could not be fetched: {first_line(err)}; download it and set {key} "
            "to the local folder"
        ) from None


def load_state(module: torch.nn.Module, path: Path, key: str) -> None:
    """Strictly load a state dict; a corrupt file and a mismatch are different one-line errors,
    each naming the real file (not the savedir's link to it)."""
    path = Path(path).resolve()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InterpreterError(
            f"{key}: checkpoint {path} is corrupt or truncated ({first_line(err)}); "
            "copy or export it again"
        ) from None
    try:
        module.load_state_dict(state, strict=True)
    except Exception as err:
        raise InterpreterError(
            f"{key}: checkpoint {path} does not fit the model ({first_line(err)}); "
            "re-export it or fix the yaml that describes the model"
        ) from None


def check_pretrained_source(source: str, key: str, missing_hint: str) -> str:
    """``source`` for a transformers ``from_pretrained``: a local folder that is missing, or a
    hub id while the hub cannot be reached, is one line (in seconds, not after retries)."""
    source = str(source)
    if is_local(source):
        if not Path(source).expanduser().is_dir():
            raise InterpreterError(f"{key} {source} is not a folder; {missing_hint}")
    elif not hub_reachable():
        raise InterpreterError(unreachable_message(source, key))
    return source
