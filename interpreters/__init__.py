"""Listenable interpreters for audio classifiers, as SpeechBrain recipes."""

from interpreters import _compat

_compat.install()
