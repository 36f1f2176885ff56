"""Listenable interpreters for audio classifiers, as SpeechBrain recipes.

Importing the package first installs the torchaudio compatibility hook (see ``_compat``); the
public names below load lazily so that ``import interpreters`` stays cheap.
"""

from importlib import import_module

from interpreters import _compat

_compat.install()

_PUBLIC = {
    "Explanation": "interpreters.brain",
    "InterpreterBrain": "interpreters.brain",
    "FrontEnd": "interpreters.audio",
    "load_audio": "interpreters.audio",
    "InterpreterError": "interpreters.errors",
    "load_classifier": "interpreters.sources",
    "export_classifier": "interpreters.sources",
    "LMAC": "interpreters.methods.lmac",
    "L2I": "interpreters.methods.l2i",
    "LMACTD": "interpreters.methods.lmac_td",
    "SaliencyBrain": "interpreters.methods.baselines",
    "IntegratedGradientsBrain": "interpreters.methods.baselines",
    "SmoothGradBrain": "interpreters.methods.baselines",
    "GradCAMBrain": "interpreters.methods.baselines",
    "LRPBrain": "interpreters.methods.lrp",
    "Interpreter": "interpreters.inference",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """Load public names on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'interpreters' has no attribute '{name}'")
    return getattr(import_module(_PUBLIC[name]), name)
