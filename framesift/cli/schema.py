"""``framesift schema events``: print the JSON Schema (draft 2020-12) that every event validates against.

The default is the schema that ships in the package (the contract: forward compatible, see
docs/events.md); ``--strict`` prints exactly what this version writes (every key required, no other
keys or event types). Exit codes: 0 ok, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from framesift.errors import EXIT_OK

SCHEMAS = ("events",)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "schema", help="print the JSON Schema of the events framesift writes", description=__doc__
    )
    p.add_argument("name", choices=SCHEMAS, help="which schema (events)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exactly what this version writes: every key required, no unknown keys or event types",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from framesift.schemas import events_schema, render, shipped_events_schema

    sys.stdout.write(render(events_schema(strict=True)) if args.strict else shipped_events_schema())
    return EXIT_OK
