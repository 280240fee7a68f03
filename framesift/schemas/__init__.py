"""The JSON Schema of events, generated from the event dataclasses (:mod:`framesift.events`).

The package ships the generated document as ``framesift/schemas/events.schema.json`` (printed by
``framesift schema events``); a test checks it equals :func:`events_schema` of the code, so a changed
or added event type fails until the file is regenerated with::

    python -m framesift.schemas --docs docs/events.md

Mapping, per field of an event class (its annotation, read with ``Annotated`` metadata):
``str`` → string, ``int`` → integer, ``float`` → number, ``bool`` → boolean, ``None`` → null,
``Fraction`` → the string ``"num/den"`` (``$defs/fraction``), ``X | None`` → X or null,
``Literal[...]`` → enum, ``list[X]`` / ``tuple[X, ...]`` → array of X, ``tuple[X, Y]`` → an array of
exactly those items, ``dict[str, X]`` → object of X, a ``TypedDict`` → an object (``$defs/<Name>``)
with its required keys. :class:`~framesift.events.Doc` adds a description and keywords (``enum``,
``minimum``, ``pattern``) or names a shared ``$defs`` entry (``source_id``);
:class:`~framesift.events.WrittenAs` gives the written type of a converted field;
:data:`~framesift.events.NOT_WRITTEN` fields are left out. Any other type (``Any``, a class) is an
error: a new event type must say how it is written. Each event type is a ``$defs`` entry (its
``type`` name) with ``schema`` and ``type`` constants; the document is their ``oneOf``.

Two variants: the shipped one is the *contract* (forward compatible, as docs/events.md promises:
required are the envelope ``schema, type, source, wallclock`` and the fields without a default;
other keys are allowed; an event type added later in this version is checked for the envelope only).
``strict=True`` is exactly what this version writes (every key required, no other key, no other
type); framesift's tests validate every command's output against both.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
from fractions import Fraction
from importlib import resources
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

from framesift.events import (
    EVENT_TYPES,
    SCHEMA,
    SCHEMA_VERSION,
    Doc,
    Event,
    EventField,
    _jsonable,
    event_fields,
)

__all__ = ["events_schema", "fields_markdown", "render", "shipped_events_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
FILE = "events.schema.json"
_EMPTY_FACTORIES: dict[Any, Any] = {dict: {}, list: [], tuple: []}


def _docstring(obj: Any) -> str:
    """The docstring for JSON and Markdown readers (reST double backticks become single ones)."""
    text = inspect.cleandoc(obj.__doc__ or obj.__name__).replace("``", "`")
    return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)  # :class:`X` → `X`


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


class _Builder:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.defs: dict[str, Any] = {}

    def define(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        if name in self.defs and self.defs[name] != schema:
            raise TypeError(f"two different JSON Schema definitions are named {name!r}")
        self.defs[name] = schema
        return _ref(name)

    def of(self, tp: Any, where: str) -> dict[str, Any]:
        """The JSON Schema of Python type ``tp`` (``where`` names the field, for errors)."""
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            return self.doc(self.of(args[0], where), [m for m in args[1:] if isinstance(m, Doc)])
        if tp is None or tp is type(None):
            return {"type": "null"}
        simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
        if tp in simple:
            return {"type": simple[tp]}
        if tp is Fraction:
            fraction = {
                "type": "string",
                "pattern": "^-?[0-9]+/[1-9][0-9]*$",
                "description": "an exact fraction written as `num/den`",
            }
            return self.define("fraction", fraction)
        if origin is Union or origin is types.UnionType:
            members = [self.of(a, where) for a in args]
            if all(set(m) == {"type"} and isinstance(m["type"], str) for m in members):
                return {"type": [m["type"] for m in members]}
            return {"anyOf": members}
        if origin is Literal:
            return {"enum": list(args)}
        if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "items": self.of(args[0], where)}
        if origin is tuple:
            items = [self.of(a, where) for a in args]
            return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items)}
        if origin is dict and args and args[0] is str:
            return {"type": "object", "additionalProperties": self.of(args[1], where)}
        if is_typeddict(tp):
            return self.typeddict(tp, where)
        raise TypeError(
            f"{where}: no JSON Schema for {tp!r}; give the field a JSON type (str, int, float, bool, "
            "Fraction, list, tuple, dict[str, X], a TypedDict, X | None), WrittenAs(...) or NOT_WRITTEN"
        )

    def doc(self, schema: dict[str, Any], docs: list[Doc]) -> dict[str, Any]:
        for d in docs:
            if d.name is not None:
                schema = self.define(d.name, {"description": d.description, **schema, **d.keywords})
            else:
                schema = {"description": d.description, **schema, **d.keywords}
        return schema

    def typeddict(self, tp: Any, where: str) -> dict[str, Any]:
        hints = get_type_hints(tp, include_extras=True)
        props = {k: self.of(v, f"{where}.{k}") for k, v in hints.items()}
        out: dict[str, Any] = {"type": "object"}
        if tp.__doc__:
            out["description"] = _docstring(tp)
        out["properties"] = props
        out["required"] = [k for k in hints if k in tp.__required_keys__]
        if self.strict:
            out["additionalProperties"] = False
        return self.define(tp.__name__, out)

    def field(self, f: EventField, cls: type[Event]) -> dict[str, Any]:
        """The schema of one written field (its type, then its :class:`Doc`)."""
        where = f"{cls.__name__}.{f.name}"
        schema = self.of(f.type, where)
        if f.doc is not None:
            return self.doc(schema, [f.doc])
        if "$ref" not in schema:
            raise TypeError(f"{where}: describe the field (Annotated[..., Doc('...')])")
        return schema

    def event(self, cls: type[Event]) -> dict[str, Any]:
        envelope = {f.name for f in dataclasses.fields(Event)}
        props: dict[str, Any] = {
            "schema": {"description": "event format and version", "const": SCHEMA},
            "type": {"description": "event type: selects the shape", "const": cls.type},
        }
        required = ["schema", "type"]
        for f in event_fields(cls):
            if not f.written:
                continue
            schema = self.field(f, cls)
            default = f.declared.default
            if default is dataclasses.MISSING:
                default = _EMPTY_FACTORIES.get(f.declared.default_factory, dataclasses.MISSING)
            if default is not dataclasses.MISSING:
                written = default if f.convert is None else f.convert(default)
                schema = {**schema, "default": _jsonable(written)}
            props[f.name] = schema
            no_default = (
                f.declared.default is dataclasses.MISSING
                and f.declared.default_factory is dataclasses.MISSING
            )
            if self.strict or no_default or f.name in envelope:
                required.append(f.name)
        out: dict[str, Any] = {
            "title": cls.__name__,
            "description": _docstring(cls),
            "type": "object",
            "properties": props,
            "required": required,
        }
        if self.strict:
            out["additionalProperties"] = False
        return out


def events_schema(*, strict: bool = False) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every event type in :data:`~framesift.events.EVENT_TYPES`."""
    b = _Builder(strict)
    event_defs: dict[str, Any] = {name: b.event(cls) for name, cls in EVENT_TYPES.items()}
    clash = set(event_defs) & set(b.defs)
    if clash:
        raise TypeError(f"event type names clash with shared definitions: {sorted(clash)}")
    one_of = [_ref(name) for name in event_defs]
    if not strict:
        base = {f.name: b.field(f, Event) for f in event_fields(Event)}
        event_defs["other"] = {
            "description": "an event type added to this version after this schema: only the envelope is checked",
            "type": "object",
            "properties": {
                "schema": {"const": SCHEMA},
                "type": {"type": "string", "not": {"enum": list(EVENT_TYPES)}},
                **base,
            },
            "required": ["schema", "type", *base],
        }
        one_of.append(_ref("other"))
    variant = "exactly what this version writes" if strict else "the contract"
    return {
        "$schema": DRAFT,
        "$id": f"urn:framesift:event:{SCHEMA_VERSION}{':strict' if strict else ''}",
        "title": f"framesift event, schema {SCHEMA} ({variant})",
        "description": "One event as sinks write it (one JSON object; one line of a JSONL file); "
        "`type` selects the shape. Reference: docs/events.md.",
        "type": "object",
        "required": ["schema", "type"],
        "properties": {"schema": {"const": SCHEMA}, "type": {"type": "string"}},
        "oneOf": one_of,
        "$defs": {**b.defs, **event_defs},
    }


def render(schema: dict[str, Any]) -> str:
    """The document as the shipped file holds it (2-space indent, a final newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def shipped_events_schema() -> str:
    """The schema file that ships in the package (what ``framesift schema events`` prints)."""
    return resources.files(__name__).joinpath(FILE).read_text(encoding="utf-8")


# -- the field reference in docs/events.md ------------------------------------------------------------

DOCS_BEGIN = "<!-- generated by `python -m framesift.schemas --docs docs/events.md`: do not edit -->"
DOCS_END = "<!-- end of generated reference -->"
_REF_LABELS = {"source_id": "source id", "fraction": '`"num/den"`'}


def _label(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _REF_LABELS.get(name, f"`{name}`")
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "anyOf" in schema:
        return " \\| ".join(_label(s) for s in schema["anyOf"])
    t = schema.get("type")
    if isinstance(t, list):
        return " \\| ".join(t)
    if t == "array" and "prefixItems" in schema:
        items = [_label(s) for s in schema["prefixItems"]]
        return f"[{items[0]} × {len(items)}]" if len(set(items)) == 1 else f"[{', '.join(items)}]"
    if t == "array":
        return f"array of {_label(schema['items'])}"
    if t == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_label(schema['additionalProperties'])}"
    return str(t)


def _meaning(schema: dict[str, Any]) -> str:
    text = schema.get("description", "")
    if "enum" in schema:
        text += ": " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "minimum" in schema and "maximum" in schema:
        text += f" ({schema['minimum']}–{schema['maximum']})"
    elif "minimum" in schema:
        text += f" (≥ {schema['minimum']})"
    if "default" in schema:
        text += f" (default `{json.dumps(schema['default'])}`)"
    return text.replace("|", "\\|")


def fields_markdown() -> str:
    """The per-type field tables of docs/events.md (between its generated-reference markers)."""
    schema = events_schema()
    defs = schema["$defs"]
    out = [DOCS_BEGIN, ""]
    for name, cls in EVENT_TYPES.items():
        d = defs[name]
        out += [f"### `{name}` — {cls.__name__}", "", d["description"], ""]
        out += ["| field | type | required | meaning |", "|---|---|---|---|"]
        for key, prop in d["properties"].items():
            meaning = _meaning(defs[prop["$ref"].rsplit("/", 1)[-1]] if set(prop) == {"$ref"} else prop)
            req = "yes" if key in d["required"] else "no"
            out.append(f"| `{key}` | {_label(prop)} | {req} | {meaning} |")
        out.append("")
    for name, d in schema["$defs"].items():
        if d.get("type") == "object" and name not in EVENT_TYPES and name != "other":
            out += [f"### `{name}`", "", d.get("description", ""), ""]
            out += ["| key | type | required |", "|---|---|---|"]
            for key, prop in d["properties"].items():
                out.append(f"| `{key}` | {_label(prop)} | {'yes' if key in d['required'] else 'no'} |")
            out.append("")
    out.append(DOCS_END)
    return "\n".join(out)


def replace_generated(text: str, block: str) -> str:
    """``text`` with the part between the generated-reference markers replaced by ``block``."""
    start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if start < 0 or end < start:
        raise ValueError("the generated-reference markers are missing")
    return text[:start] + block + text[end + len(DOCS_END) :]
