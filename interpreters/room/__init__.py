"""The listening room: an interactive explainer in the browser (recipes/app.py) and listening
tests anyone can build, run and analyse (recipes/listening_test.py)."""

from __future__ import annotations

import os
import socket

# Every gradio import in the project goes through this package: gradio never phones home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (gradio needs a number: it builds its URL from it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
