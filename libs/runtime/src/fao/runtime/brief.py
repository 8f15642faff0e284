"""One short reason for an error a command prints in its one line (or a service logs).

pymongo's ``ServerSelectionTimeoutError`` carries the timeouts it was configured with and its whole
topology description (≈700 characters on one line); the reason keeps what happened, e.g.
``127.0.0.1:2: [Errno 111] Connect call failed ('127.0.0.1', 2)``.
"""

from __future__ import annotations

# Where pymongo's connection errors start repeating configuration rather than saying what failed.
NOISE = (" (configured timeouts:", ", Timeout:", ", Topology Description:")
LONGEST = 200


def brief(exc: BaseException) -> str:
    """The first line of the error's text, without pymongo's configuration dump, at most
    ``LONGEST`` characters."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    for marker in NOISE:
        text = text.split(marker, 1)[0]
    return text if len(text) <= LONGEST else text[: LONGEST - 3] + "..."
