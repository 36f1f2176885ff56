"""The one exception type for user-facing problems: bad files, keys, sources or settings."""

import argparse


class InterpreterError(ValueError):
    """A problem the user can fix; its message is one line naming the thing and what to do."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line
    errors that wrap a library's multi-line ones."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (the --help text says the rest)."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")
