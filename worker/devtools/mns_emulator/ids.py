"""Message ids, request ids and receipt handles shaped like the service's."""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
import struct

_HANDLE_PREFIX = "1-"


class IdSource:
    """Thread-safe id factory (``next()`` on ``itertools.count`` is atomic in CPython).

    Receipt handles are base64 like the real ones, so they routinely contain ``+``, ``/`` and ``=``: a client
    that URL-decodes the raw query (``+`` -> space) breaks here as it would against MNS. Handles derive from
    the seed and a counter, so a seeded run hands out the same handles; message and request ids carry a
    per-instance node id instead, so that ids never repeat across emulator restarts.
    """

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed & 0xFFFFFFFFFFFFFFFF
        self._node = os.urandom(8).hex().upper()
        self._messages = itertools.count(1)
        self._requests = itertools.count(1)
        self._handles = itertools.count(1)

    @property
    def node(self) -> str:
        return self._node

    def message_id(self, enqueue_ms: int) -> str:
        return f"{self._node}-1-{enqueue_ms:X}-{next(self._messages):09X}"

    def request_id(self) -> str:
        return f"{self._node}{next(self._requests):08X}"

    def receipt_handle(self) -> str:
        serial = next(self._handles)
        mac = hashlib.blake2b(struct.pack(">QQ", self._seed, serial), digest_size=9).digest()
        return _HANDLE_PREFIX + base64.b64encode(mac + struct.pack(">Q", serial)).decode("ascii")

    @staticmethod
    def is_well_formed(handle: str) -> bool:
        """Could this string be a receipt handle at all? (A mangled one answers ReceiptHandleError.)"""
        if not handle.startswith(_HANDLE_PREFIX):
            return False
        try:
            raw = base64.b64decode(handle[len(_HANDLE_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            return False
        return len(raw) == 17
