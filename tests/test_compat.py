"""`import interpreters` makes the registry's CUDA-built torchaudio importable on CPU torch."""

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_torchaudio_and_speechbrain_import_after_interpreters():
    result = _run(
        "import interpreters, torchaudio, speechbrain, torch\n"
        "import torchaudio.functional as AF\n"
        "y = AF.resample(torch.ones(1, 160), 16000, 8000)\n"
        "print(y.shape[-1], torchaudio._extension._IS_TORCHAUDIO_EXT_AVAILABLE)"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    length, extension = result.stdout.split()
    assert int(length) == 80
    # On a CUDA-built torchaudio with CPU torch the extension is reported absent, not fatal.
    import torch

    if torch.version.cuda is None:
        assert extension == "False"


def test_hook_installed_once():
    result = _run(
        "import importlib, sys, interpreters\n"
        "from interpreters import _compat\n"
        "_compat.install(); _compat.install()\n"
        "print(sum(type(f).__name__ == '_TorchaudioExtensionFinder' for f in sys.meta_path))"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "1"


def test_public_names_resolve():
    result = _run(
        "import interpreters\n"
        "print(all(getattr(interpreters, n).__name__ == n for n in interpreters.__all__))"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True"
