"""The ``framesift`` command.

Each subcommand lives in its own module ``framesift/cli/<name>.py`` exposing
``register(subparsers) -> None``; the parser it adds sets ``func(args) -> int``.
Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 3 input unreadable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from framesift import __version__
from framesift.errors import EXIT_INTERRUPTED, EXIT_USAGE, FramesiftError
from framesift.log import redact, setup_logging

COMMANDS = (
    "run",
    "probe",
    "doctor",
    "scenes",
    "collect",
    "search",
    "export",
    "detect",
    "label",
    "sources",
    "demo",
    "schema",
    "serve",
)


class Parser(argparse.ArgumentParser):
    """argparse with one line per usage error (no usage block above it) naming where help is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}  # the subcommands' parsers, by name

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    parser = Parser(
        prog="framesift",
        description="Real-time video stream processor for foundation models.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage/config error, 3 input unreadable, "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"framesift {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="plain", choices=["plain", "json"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"framesift.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"framesift.cli.{name}":
                continue
            raise
        module.register(sub)
    parser.commands = dict(sub.choices)
    for p in [parser, *sub.choices.values()]:  # help reads as plain text, not reStructuredText
        p.description = plain_text(p.description)
        p.epilog = plain_text(p.epilog)
        for action in p._actions:
            action.help = plain_text(action.help)
    return parser


_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data):`~?([^`]+)`")


def plain_text(text: str | None) -> str | None:
    """``text`` without reStructuredText markup (double backticks, roles such as :class:`X`)."""
    if not text:
        return text
    return _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text).replace("``", "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (also used by ``python -m framesift``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the command they were given to, whose --help lists what it takes
        where = parser.commands.get(getattr(args, "command", None) or "", parser)
        where.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    setup_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except FramesiftError as exc:
        print(f"framesift: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("framesift: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
