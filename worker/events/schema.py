"""The fields of an event type, read from its pydantic model: what ``ims-worker events show`` prints and what
``docs/events-reference.md`` is generated from (``python -m worker.docgen.eventsdoc``).

Nested models are flattened into dotted paths (``MessageBody.MediaId``), lists of models as ``Items[].Name``;
types are shown the way a handler author reads them (``str``, ``int | None``, ``list[str]``); a field is
required when the model requires it. Names are the provider's (the aliases the payload uses).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

MAX_DEPTH = 4  # the deepest documented payload nests three models


@dataclass(frozen=True)
class FieldRow:
    path: str
    type: str
    required: bool
    description: str = ""


def _strip(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> X."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> tuple[Any, ...]:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(_strip(a) for a in typing.get_args(annotation))
    return (annotation,)


def type_name(annotation: Any) -> str:
    """``str | None``, ``list[str]``, ``dict[str, Any]``, a model's class name."""
    annotation = _strip(annotation)
    members = _members(annotation)
    if len(members) > 1:
        return " | ".join(type_name(m) for m in members)
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    origin = typing.get_origin(annotation)
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if args else name
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def _nested(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model a field holds (itself, optionally, or in a list): (model, in a list)."""
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member, False
        if typing.get_origin(member) in (list, tuple):
            for arg in map(_strip, typing.get_args(member)):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    return arg, True
    return None


def fields(model: type[BaseModel], prefix: str = "", depth: int = 0) -> Iterator[FieldRow]:
    """Every field of ``model``, nested models flattened, in the model's order."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        yield FieldRow(path, type_name(info.annotation), info.is_required(), info.description or "")
        nested = _nested(info.annotation)
        if nested is not None and depth < MAX_DEPTH:
            inner, in_list = nested
            yield from fields(inner, f"{path}[]." if in_list else f"{path}.", depth + 1)


def example(payload: Any, path: str) -> Any:
    """The value at ``path`` in a dumped event (``Items[].Name``: the first item's); None when absent."""
    value = payload
    for part in path.split("."):
        in_list = part.endswith("[]")
        key = part.removesuffix("[]")
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
        if in_list:
            if not isinstance(value, list) or not value:
                return None
            value = value[0]
    return value
