"""Import-time fixes that let the toolkit run on the pinned CPU torch.

The registry's torchaudio is built for CUDA: its compiled extension cannot load on CPU torch and
``import torchaudio`` (pulled in by ``import speechbrain``) would fail. We treat the extension as
absent instead, which is what torchaudio itself does when the library file is missing.
"""

import importlib.abc
import importlib.machinery
import logging
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


class _ExecWrappingFinder(importlib.abc.MetaPathFinder):
    """Finds one module the normal way, then runs ``wrap(exec_module, module)`` to execute it."""

    module_name: str

    def wrap(self, exec_module, module: ModuleType) -> None:
        raise NotImplementedError

    def find_spec(self, fullname, path, target=None):
        if fullname != self.module_name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module
        spec.loader.exec_module = lambda module: self.wrap(exec_module, module)
        return spec


class _TorchaudioExtensionFinder(_ExecWrappingFinder):
    """Patches torchaudio's extension loader right after its module is executed."""

    module_name = _PATCHED_MODULE

    def wrap(self, exec_module, module: ModuleType) -> None:
        exec_module(module)
        module._load_lib = _tolerant(module._load_lib)


def _install_once(finder_class: type) -> None:
    """Put a finder first on ``sys.meta_path`` unless one of its class is there."""
    if not any(isinstance(f, finder_class) for f in sys.meta_path):
        sys.meta_path.insert(0, finder_class())


def install() -> None:
    """Install the finder once, before anything imports torchaudio."""
    _install_once(_TorchaudioExtensionFinder)
    install_zennit_hook()
    silence_torchvision_warning()


class _DropTorchvisionWarning(logging.Filter):
    """SpeechBrain warns on import that torchvision cannot save figures; ours use matplotlib."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "torchvision is not available" not in record.getMessage()


def silence_torchvision_warning() -> None:
    """Drop that one misleading warning, once."""
    logger = logging.getLogger("speechbrain.utils.train_logger")
    if not any(isinstance(f, _DropTorchvisionWarning) for f in logger.filters):
        logger.addFilter(_DropTorchvisionWarning())


# zennit imports ``torchvision.models.resnet`` at import time only to name two ResNet block
# classes for its torchvision canonizers. Where torchvision is absent, or is the registry's CUDA
# build that fails on CPU torch, zennit gets placeholder classes for that one import instead.
_ZENNIT = "zennit"
_TORCHVISION_NAMES = ("torchvision", "torchvision.models", "torchvision.models.resnet")


def _torchvision_stand_in() -> dict[str, ModuleType]:
    """Modules holding just the names zennit imports: ResNet ``Bottleneck`` and ``BasicBlock``."""
    import torch.nn as nn

    modules = {
        name: ModuleType(name, "stand-in for zennit's import") for name in _TORCHVISION_NAMES
    }
    resnet = modules["torchvision.models.resnet"]
    for block in ("Bottleneck", "BasicBlock"):
        setattr(resnet, block, type(block, (nn.Module,), {"__module__": resnet.__name__}))
    modules["torchvision"].models = modules["torchvision.models"]
    modules["torchvision.models"].resnet = resnet
    return modules


def _real_torchvision_imports() -> bool:
    """Whether the installed torchvision (if any) imports; a failed try leaves no trace."""
    try:
        import torchvision.models.resnet  # noqa: F401
    except Exception:  # ImportError when absent; RuntimeError for a CUDA build on CPU torch
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        return False
    return True


class _ZennitTorchvisionFinder(_ExecWrappingFinder):
    """Executes zennit with a torchvision stand-in when the real one cannot be imported."""

    module_name = _ZENNIT

    def wrap(self, exec_module, module: ModuleType) -> None:
        if _real_torchvision_imports():
            exec_module(module)
            return
        stand_in = _torchvision_stand_in()
        sys.modules.update(stand_in)
        try:
            exec_module(module)
        finally:  # later imports of torchvision see the real failure, not the stand-in
            for name in stand_in:
                sys.modules.pop(name, None)


def install_zennit_hook() -> None:
    """Install the zennit finder once (cheap: nothing is imported until zennit is)."""
    _install_once(_ZennitTorchvisionFinder)
