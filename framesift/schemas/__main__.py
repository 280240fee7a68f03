"""``python -m framesift.schemas [--check] [--docs docs/events.md]``: regenerate the shipped event schema.

Writes framesift/schemas/events.schema.json from the event dataclasses and, with ``--docs``, the
generated field reference in that Markdown file. ``--check`` writes nothing and exits 1 when a file
is out of date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from framesift.schemas import FILE, events_schema, fields_markdown, render, replace_generated


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m framesift.schemas", description=__doc__)
    p.add_argument("--docs", type=Path, help="also regenerate the field reference in this Markdown file")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file is out of date")
    args = p.parse_args(argv)
    targets = [(Path(__file__).with_name(FILE), render(events_schema()))]
    if args.docs is not None:
        targets.append(
            (args.docs, replace_generated(args.docs.read_text(encoding="utf-8"), fields_markdown()))
        )
    stale = [path for path, text in targets if not path.exists() or path.read_text(encoding="utf-8") != text]
    for path in stale:
        if args.check:
            print(f"{path}: out of date (run: python -m framesift.schemas --docs docs/events.md)")
        else:
            path.write_text(targets[[t[0] for t in targets].index(path)][1], encoding="utf-8")
            print(f"wrote {path}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
