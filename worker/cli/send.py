"""`ims-worker send`: PROVISIONAL placeholder until its issue lands."""

from __future__ import annotations

import argparse
from typing import Any


def _not_yet(args: argparse.Namespace) -> int:
    print("ims-worker send: not available yet")
    return 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("send", help="(not available yet)")
    parser.set_defaults(func=_not_yet)
