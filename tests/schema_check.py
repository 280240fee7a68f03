"""Validate events as a command wrote them against the event JSON Schema (docs/events.md).

``validate_events(dicts)`` checks each dict against the schema that ships in the package (the
contract) and against the strict variant (exactly what this version writes: every key, no other),
and fails with one line per bad event naming the event, the key and the problem. Adding a command's
output to the checks is one line: ``validate_events(read_jsonl(out / "events.jsonl"))``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest


def _jsonschema() -> Any:
    return pytest.importorskip("jsonschema", reason="the event-schema checks need jsonschema (pip install)")


@functools.cache
def validators() -> dict[str, Any]:
    """``{"shipped": ..., "strict": ...}`` Draft 2020-12 validators (each schema checked first)."""
    from framesift.schemas import events_schema, shipped_events_schema

    jsonschema = _jsonschema()
    out = {}
    for name, schema in (
        ("shipped", json.loads(shipped_events_schema())),
        ("strict", events_schema(strict=True)),
    ):
        jsonschema.Draft202012Validator.check_schema(schema)
        out[name] = jsonschema.Draft202012Validator(schema)
    return out


def _problems(validator: Any, event: Any) -> list[str]:
    errors = list(validator.iter_errors(event))
    if not errors:
        return []
    kind = event.get("type") if isinstance(event, dict) else None
    if isinstance(kind, str) and kind in validator.schema["$defs"]:
        # the oneOf says only "not valid under any": validate against the type's own branch instead
        schema = {k: v for k, v in validator.schema.items() if k != "oneOf"}
        narrow = validator.evolve(schema={**schema, "allOf": [{"$ref": f"#/$defs/{kind}"}]})
        errors = list(narrow.iter_errors(event)) or errors
    out = []
    for err in sorted(errors, key=lambda e: list(e.absolute_path))[:5]:
        where = ".".join(str(p) for p in err.absolute_path) or "(event)"
        out.append(f"{where}: {err.message}")
    return out


def validate_events(
    events: Iterable[dict[str, Any]], *, what: str = "events", allow_empty: bool = False
) -> int:
    """Assert every event validates against the shipped and the strict schema; return how many."""
    failures = []
    n = 0
    for i, event in enumerate(events):
        n += 1
        for name, validator in validators().items():
            for problem in _problems(validator, event):
                kind = event.get("type") if isinstance(event, dict) else type(event).__name__
                failures.append(f"{what}[{i}] ({kind}, {name} schema): {problem}")
    assert n or allow_empty, f"{what}: no events to validate"
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures[:20])
    return n


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file (every line must parse)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
