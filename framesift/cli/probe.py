"""``framesift probe URL_OR_FILE``: codec, size, fps, duration and keyframe interval of an input."""

from __future__ import annotations

import argparse
import json
from typing import Any

from framesift.errors import EXIT_OK, ConfigError

#: The longest ``--timeout`` accepted (a day).
MAX_TIMEOUT_S = 86_400


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "probe",
        help="describe a video file or stream (codec, size, fps, duration, keyframe interval)",
        description="Describe a video file or stream. Exit code 3 when the input cannot be read.",
    )
    p.add_argument("input", metavar="URL_OR_FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds a stream is probed at most, whatever the server does (default 10)",
    )
    p.add_argument(
        "--decoder",
        default="auto",
        choices=["auto", "pyav", "opencv", "pyav-cuda", "nvcodec"],
        help="decoder to report on (default auto); an unavailable one exits 3",
    )
    p.set_defaults(func=run)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from framesift.stream.probe import probe

    if not 0 < args.timeout <= MAX_TIMEOUT_S:  # also refuses nan
        raise ConfigError(f"--timeout: {args.timeout:g} is not a number of seconds in (0, {MAX_TIMEOUT_S}]")
    info = probe(args.input, timeout=args.timeout, decoder=args.decoder)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key.replace('_', ' '):<{width}}  {_fmt(value)}")
    return EXIT_OK
