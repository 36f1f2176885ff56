"""The one exception type for user-facing problems: bad files, keys, sources or settings."""


class InterpreterError(ValueError):
    """A problem the user can fix; its message is one line naming the thing and what to do."""
