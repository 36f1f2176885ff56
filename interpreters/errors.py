"""The one exception type for user-facing problems: bad files, keys, sources or settings."""


class InterpreterError(ValueError):
    """A problem the user can fix; its message is one line naming the thing and what to do."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line
    errors that wrap a library's multi-line ones."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
