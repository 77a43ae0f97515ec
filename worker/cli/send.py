"""``ims-worker send FILE... --mns QUEUE | --http URL``: inject payloads for tests, demos and replays.

``--mns`` sends each file as one message through the real aliyun-mns-sdk with the configured endpoint and
credentials (plain JSON, as IMS writes it; ``--base64`` for producers that encode). ``--http`` POSTs each
file to the shim, signed as its provider signs (``worker.shim.signing``) with the configured keys; the
provider is read from the payload's shape unless ``--provider`` says it. Exit 0 only if every file was
accepted (MNS: sent; HTTP: answered 200).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from worker.errors import InvalidPayload
from worker.httppost import ConnectionLost
from worker.inject import MNS_MAX_MESSAGE_BYTES, encoded_size, post_webhook, send_to_mns
from worker.providers import detect_source
from worker.settings import load_settings
from worker.shim.providers import ENDPOINTS
from worker.shim.signing import SOURCE_ALIASES, source_of


def _read(paths: list[str]) -> list[tuple[str, bytes]] | None:
    files = []
    for name in paths:
        try:
            files.append((name, Path(name).read_bytes()))
        except OSError as exc:
            print(f"ims-worker send: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
            return None
    return files


def _send_mns(args: argparse.Namespace, files: list[tuple[str, bytes]]) -> int:
    settings = load_settings()
    bodies = []
    for name, raw in files:
        try:
            bodies.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            print(f"{name}: not UTF-8 text; MNS message bodies are text", file=sys.stderr)
            return 1
    too_large = [
        (name, size)
        for (name, _), body in zip(files, bodies, strict=True)
        if (size := encoded_size(body, base64=args.base64)) > MNS_MAX_MESSAGE_BYTES
    ]
    for name, size in too_large:
        print(
            f"{name}: {size} bytes{' after base64' if args.base64 else ''}, over the MNS limit of "
            f"{MNS_MAX_MESSAGE_BYTES} bytes (64 KiB) per message; nothing was sent",
            file=sys.stderr,
        )
    if too_large:
        return 1
    ids = send_to_mns(settings, args.mns, bodies, base64=args.base64)
    for (name, _), message_id in zip(files, ids, strict=True):
        print(f"{name}: sent to MNS queue {args.mns} as message {message_id}")
    return 0


def _provider_for(name: str, raw: bytes, forced: str | None) -> str:
    if forced:
        return source_of(forced)
    try:
        return detect_source(raw)
    except InvalidPayload as exc:
        raise InvalidPayload(f"{name}: {exc} (or pass --provider)") from exc


def _send_http(args: argparse.Namespace, files: list[tuple[str, bytes]]) -> int:
    settings = load_settings()
    failures = 0
    for name, raw in files:
        try:
            provider = _provider_for(name, raw, args.provider)
        except InvalidPayload as exc:
            print(str(exc), file=sys.stderr)
            failures += 1
            continue
        try:
            answer = post_webhook(settings, args.http, provider, raw, timeout=args.timeout)
        except ConnectionLost as exc:
            print(f"{name}: {args.http}: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"{name}: cannot reach {args.http}: {exc}", file=sys.stderr)
            return 1
        # An authenticated but invalid payload is dead-lettered by the shim and answered 200: not a success.
        ok = answer.status == 200 and '"dead_lettered":true' not in answer.body.replace(" ", "")
        stream = sys.stdout if ok else sys.stderr
        print(f"{name}: {provider} -> {answer.url}: {answer.status} {answer.body.strip()}", file=stream)
        failures += 0 if ok else 1
    return 1 if failures else 0


def _send(args: argparse.Namespace) -> int:
    files = _read(args.files)
    if files is None:
        return 2
    if args.mns:
        return _send_mns(args, files)
    return _send_http(args, files)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "send",
        help="inject payload files into an MNS queue or the webhook shim",
        description="Send each FILE as one MNS message (real SDK, IMS_WORKER_MNS_* settings) or POST it to "
        "the shim signed like its provider does (IMS_WORKER_*_KEY settings; unset key: unsigned).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSON payload files")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--mns", metavar="QUEUE", help="send to this MNS queue")
    target.add_argument(
        "--http",
        metavar="URL",
        help="POST to the shim: a base URL (the provider's route is added) or a full endpoint URL",
    )
    parser.add_argument("--base64", action="store_true", help="--mns: base64-encode bodies (SDK default)")
    parser.add_argument(
        "--provider",
        choices=sorted({*ENDPOINTS, *SOURCE_ALIASES}),
        help="--http: the provider to sign as (default: detected from the payload)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="--http: seconds per request")
    parser.set_defaults(func=_send)
