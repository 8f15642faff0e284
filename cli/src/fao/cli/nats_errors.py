"""The CLI's NATS error callback.

nats-py's default callback logs every connection error with its traceback on stderr; a command
reports the failure itself, in one line, from the exception ``nats.connect`` raises.
"""

from __future__ import annotations


async def quiet(_exc: Exception) -> None:
    """Pass as ``error_cb`` to ``nats.connect``: the error is raised to the command, not logged."""
