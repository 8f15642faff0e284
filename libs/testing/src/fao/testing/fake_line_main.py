"""Command line runner for the fake LINE Messaging API server.

Runs `fao.testing.fake_line.FakeLineServer` in the foreground for local development, so a notifier
started by ``fao dev up`` can send to it instead of ``https://api.line.me``::

    python -m fao.testing.fake_line_main --port 8099 --group Cdev=3 --quota 200

It prints the base URL on the first line of standard output, logs every request, and stops cleanly
on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from fao.testing.fake_line import FakeLineServer

DEFAULT_PORT = 8099


def _group(spec: str) -> tuple[str, int]:
    group_id, _, members = spec.partition("=")
    if not group_id:
        raise argparse.ArgumentTypeError(f"expected GROUP_ID[=MEMBERS], got {spec!r}")
    try:
        return group_id, int(members) if members else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"member count must be an integer in {spec!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m fao.testing.fake_line_main",
        description="Run a fake LINE Messaging API server until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument(
        "--access-token", help="require 'Authorization: Bearer TOKEN' (default: accept any request)"
    )
    parser.add_argument(
        "--group",
        action="append",
        type=_group,
        default=None,
        metavar="GROUP_ID[=MEMBERS]",
        help="a group the bot is in, with its member count; repeatable. "
        "If given, pushes to other groups fail with 400 (default: every group is known, 1 member)",
    )
    parser.add_argument("--quota", type=int, help="monthly message limit (default: unlimited)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run the server described by `args` until cancelled or sent SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    groups = dict(args.group) if args.group is not None else None
    server = FakeLineServer(
        args.host, args.port, access_token=args.access_token, groups=groups, quota=args.quota
    )
    async with server:
        print(server.base_url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the fake LINE server in the foreground; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
