"""Listenable interpreters for audio classifiers, as SpeechBrain recipes.

Importing the package first installs the torchaudio compatibility hook (see ``_compat``); the
public names below load lazily so that ``import interpreters`` stays cheap.
"""

from importlib import import_module

from interpreters import _compat

_compat.install()

_PUBLIC = {
    "Explanation": "interpreters.explainers.base",
    "Explainer": "interpreters.explainers.base",
    "FrontEnd": "interpreters.audio",
    "load_audio": "interpreters.audio",
    "InterpreterError": "interpreters.errors",
    "AudioClassifier": "interpreters.models.base",
    "load_classifier": "interpreters.models.loading",
    "export_classifier": "interpreters.models.loading",
    "wrap_classifier": "interpreters.models.wrap",
    "TransformersClassifier": "interpreters.models.transformers_audio",
    "SpeechBrainClassifier": "interpreters.models.speechbrain_inference",
    "LMAC": "interpreters.explainers.lmac",
    "UnconditionedLMAC": "interpreters.explainers.lmac",
    "L2I": "interpreters.explainers.l2i",
    "LMACTD": "interpreters.explainers.lmac_td",
    "LMACZS": "interpreters.explainers.lmac_zs",
    "CaptumAttribution": "interpreters.explainers.attribution",
    "GradCAM": "interpreters.explainers.attribution",
    "LRP": "interpreters.explainers.lrp",
    "InterpreterBrain": "interpreters.training.brain",
    "Evaluator": "interpreters.evaluation.evaluator",
    "Interpreter": "interpreters.inference.interpreter",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """Load public names on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'interpreters' has no attribute '{name}'")
    return getattr(import_module(_PUBLIC[name]), name)
