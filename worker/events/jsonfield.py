"""Field types for where providers and their docs disagree, and JSON carried inside strings.

Providers document some fields as "a JSON string" (IMS ``Input``, Tencent ``msg``...). The model keeps the
string exactly under the provider's name, so an event dumps and re-validates unchanged, and exposes the
decoded value through a ``Decoded`` descriptor (``data.parsed_input``) that is filled once, at validation
time: a malformed JSON field is a validation error at the boundary, not a surprise in a handler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar, overload

import orjson
from pydantic import (
    AfterValidator,
    BeforeValidator,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from worker.events.envelope import EventData

T = TypeVar("T")


def _to_json_text(value: Any) -> Any:
    # Some senders embed the object where the docs promise a JSON string: keep one shape, the string.
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


JsonText = Annotated[str, BeforeValidator(_to_json_text)]
"""A string that holds JSON; an object or array sent in its place is re-encoded to a string."""


def _comma_ints(value: Any) -> Any:
    # RTC documents CurrentMedias as an integer and sends "1,2,3"; accept both, and "" for none.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


CommaInts = Annotated[list[int], BeforeValidator(_comma_ints)]
"""A list of integers sent as ``"1,2,3"``, a single integer, or a list."""


def _as_utc(value: datetime) -> datetime:
    # Provider times are documented as UTC; a naive value is UTC, an aware one is converted.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def utc_from_epoch(value: float | None) -> datetime | None:
    """A UNIX timestamp in seconds or milliseconds (guessed by magnitude) as UTC; None if unrepresentable."""
    if value is None or isinstance(value, bool):
        return None
    seconds = value / 1000 if abs(value) > 100_000_000_000 else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def summarize(exc: ValidationError, *, limit: int = 5) -> str:
    """``loc: message`` for the first ``limit`` errors; never the input values (they are payload content)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"]).replace(".[", "[")
        parts.append(f"{loc or '(payload)'}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class Decoded(Generic[T]):
    """The decoded value of the JSON string in field ``field`` (provider name), or None when absent or "".

    Strict (the default): invalid JSON or a value of the wrong shape fails validation of the model.
    Lenient (``UserData``, free-form by design): anything that does not decode reads as None.
    """

    def __init__(self, field: str, adapter: TypeAdapter[T], *, lenient: bool = False) -> None:
        self.field = field
        self.adapter = adapter
        self.lenient = lenient
        self.name = field

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def decode(self, text: str | None) -> T | None:
        if text is None or text == "":
            return None
        try:
            return self.adapter.validate_json(text)
        except ValidationError as exc:
            if self.lenient:
                return None
            shape = summarize(exc)
            raise ValueError(f"{self.field} must be JSON text of the documented shape: {shape}") from None

    @overload
    def __get__(self, instance: None, owner: type) -> Self: ...
    @overload
    def __get__(self, instance: JsonFieldsModel, owner: type) -> T | None: ...
    def __get__(self, instance: JsonFieldsModel | None, owner: type) -> Self | T | None:
        if instance is None:
            return self
        value: T | None = instance._decoded.get(self.name)
        return value


class JsonFieldsModel(EventData):
    """An ``EventData`` with ``Decoded`` attributes, decoded once when the model is validated."""

    _decoded: dict[str, Any] = PrivateAttr(default_factory=dict)
    __decoders__: ClassVar[tuple[Decoded[Any], ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        found: dict[str, Decoded[Any]] = {}
        for klass in reversed(cls.__mro__):  # base first, so a subclass may redefine one
            found.update({v.name: v for v in vars(klass).values() if isinstance(v, Decoded)})
        cls.__decoders__ = tuple(found.values())

    @model_validator(mode="after")
    def _decode_json_fields(self) -> Self:
        self._decoded = {d.name: d.decode(getattr(self, d.field, None)) for d in self.__decoders__}
        return self
