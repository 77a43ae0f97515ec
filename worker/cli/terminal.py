"""What the read commands print is escaped: no byte of an event reaches the operator's terminal as a control.

Event ids, types, business keys, handler errors and dead-letter bodies come from the payload, that is from
whoever can send an event. Printed raw, an id holding ``ESC [2J`` clears the operator's screen and
``ESC ]0;...BEL`` sets the window title (``events recent`` and ``trace`` did both). Every character that is
not printable (``str.isprintable``: C0 and C1 controls, DEL, bidi overrides and other format characters,
unassigned code points) except the newline and tab of the output's own layout is written as ``\\uXXXX``
(a surrogate pair above U+FFFF), which is also a valid escape inside the JSON that ``--json`` prints.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

_LAYOUT = frozenset("\n\t")


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def printable(text: str) -> str:
    """``text`` with every non-printable character but newline and tab escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in _LAYOUT else _escape(c) for c in text)


class EscapingStream:
    """A text stream that escapes what it is given before handing it on."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text))
        return len(text)

    def __getattr__(self, name: str) -> object:  # flush, fileno, isatty, encoding...
        return getattr(self._stream, name)


@contextlib.contextmanager
def escaped_output() -> Iterator[None]:
    """Escape everything written to stdout and stderr inside the block."""
    saved = sys.stdout, sys.stderr
    sys.stdout = EscapingStream(saved[0])
    sys.stderr = EscapingStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
