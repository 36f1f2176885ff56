"""Pretrained interpreters: export, ``Interpreter.from_hparams``, the interpret command."""

from interpreters.inference.export import export_interpreter
from interpreters.inference.interpreter import FileInterpretation, Interpreter

__all__ = ["FileInterpretation", "Interpreter", "export_interpreter"]
