"""What the read commands print is escaped and redacted: no byte of an event reaches the terminal as a
control, and no credential it carries reaches the screen (or the ticket it is pasted into) unless ``--raw``.

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

from worker.redact import redact_text

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
    """A text stream that escapes (and by default redacts, ``worker.redact``) what it is given."""

    def __init__(self, stream: TextIO, *, redact: bool = True) -> None:
        self._stream = stream
        self._redact = redact

    def write(self, text: str) -> int:
        self._stream.write(printable(redact_text(text) if self._redact else text))
        return len(text)

    def __getattr__(self, name: str) -> object:  # flush, fileno, isatty, encoding...
        return getattr(self._stream, name)


RAW_WARNING = (
    "ims-worker: --raw prints what the store holds as it is: signed URLs (OSSAccessKeyId, Signature, "
    "auth_key), tokens and other credentials included. Keep this output out of tickets, chats and logs."
)


@contextlib.contextmanager
def escaped_output(*, redact: bool = True) -> Iterator[None]:
    """Escape (and unless ``redact`` is False, redact) what is written to stdout and stderr in the block."""
    saved = sys.stdout, sys.stderr
    if not redact:
        print(RAW_WARNING, file=saved[1], flush=True)
    sys.stdout = EscapingStream(saved[0], redact=redact)
    sys.stderr = EscapingStream(saved[1], redact=redact)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
