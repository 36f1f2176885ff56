"""Import-time fixes that let the toolkit run on the pinned CPU torch.

The registry's torchaudio is built for CUDA: its compiled extension cannot load on CPU torch and
``import torchaudio`` (pulled in by ``import speechbrain``) would fail. We treat the extension as
absent instead, which is what torchaudio itself does when the library file is missing.
"""

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

_PATCHED_MODULE = "torchaudio._extension.utils"


def _tolerant(load_lib):
    """Wrap torchaudio's ``_load_lib`` so a library that fails to load reads as not installed."""

    def load(lib: str) -> bool:
        try:
            return load_lib(lib)
        except OSError:
            return False

    return load


class _TorchaudioExtensionFinder(importlib.abc.MetaPathFinder):
    """Patches torchaudio's extension loader right after its module is executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _PATCHED_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            module._load_lib = _tolerant(module._load_lib)

        spec.loader.exec_module = exec_and_patch
        return spec


def install() -> None:
    """Install the finder once, before anything imports torchaudio."""
    if not any(isinstance(f, _TorchaudioExtensionFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchaudioExtensionFinder())
