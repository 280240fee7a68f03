"""Generate the configuration reference (docs/configuration.md, "## Reference") from the models.

``python -m framesift.config.reference docs/configuration.md`` rewrites the section in place; a
test fails when the committed document differs from what the models say.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from framesift.config import PipelineConfig

MARKER = "## Reference"


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(get_args(tp)[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        inner = ", ".join(_type_name(a) for a in get_args(tp) if a is not Ellipsis)
        return f"list of {inner}"
    if origin is dict:
        k, v = get_args(tp)
        return f"map {_type_name(k)} → {_type_name(v)}"
    if origin is not None and get_args(tp):  # unions
        return " \\| ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _constraints(f: FieldInfo) -> str:
    parts = []
    for m in f.metadata:
        for attr in ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern"):
            val = getattr(m, attr, None)
            if val is not None:
                parts.append(f"{attr} {val}")
    if f.description:
        parts.append(f.description.replace("|", "\\|"))
    return "; ".join(parts)


def _default(f: FieldInfo) -> str:
    if f.default is PydanticUndefined and f.default_factory is None:
        return "required"
    value = f.default_factory() if f.default is PydanticUndefined else f.default  # type: ignore[call-arg,misc]
    if isinstance(value, BaseModel):
        return "(defaults below)"
    return repr(value).replace("|", "\\|")


def _models(tp: Any) -> list[type[BaseModel]]:
    """Every model class inside a (possibly annotated / union / list) type."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    out: list[type[BaseModel]] = []
    for arg in get_args(tp):
        out.extend(_models(arg))
    return out


def _title(path: str, model: type[BaseModel]) -> str:
    tag = model.model_fields.get("type")
    if tag is not None and isinstance(tag.default, str):
        kind = path.rstrip("[]").rsplit(".", 1)[-1].rstrip("s") or "item"
        return f"{kind.capitalize()} `type: {tag.default}`"
    return f"`{path}`" if path else "Top level"


def _table(path: str, model: type[BaseModel]) -> list[str]:
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"### {_title(path, model)}", ""]
    if doc and not doc.startswith(model.__name__ + "("):
        lines += [doc, ""]
    lines += ["| field | type | default | constraints / meaning |", "|---|---|---|---|"]
    prefix = f"{path}." if path else ""
    for name, f in model.model_fields.items():
        lines.append(
            f"| `{prefix}{name}` | {_type_name(f.annotation)} | `{_default(f)}` | {_constraints(f)} |"
        )
    return [*lines, ""]


def reference() -> str:
    """The whole reference section as Markdown."""
    out = [
        MARKER,
        "",
        "Generated from the pydantic models in `framesift/config/` by",
        "`python -m framesift.config.reference docs/configuration.md`.",
        "",
    ]
    seen: set[tuple[str, type[BaseModel]]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("", PipelineConfig)]
    while queue:
        path, model = queue.pop(0)
        if (path, model) in seen:
            continue
        seen.add((path, model))
        out += _table(path, model)
        prefix = f"{path}." if path else ""
        for name, f in model.model_fields.items():
            is_list = get_origin(f.annotation) is list
            for sub in _models(f.annotation):
                queue.append((f"{prefix}{name}{'[]' if is_list else ''}", sub))
    return "\n".join(out).rstrip() + "\n"


def render(doc: str) -> str:
    """``doc`` with everything from the ``## Reference`` heading on replaced by :func:`reference`."""
    head = doc.split(MARKER, 1)[0]
    return head + reference()


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/configuration.md")
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
