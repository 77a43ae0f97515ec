"""``ims-worker probe``: a worker's liveness probe that fails when the worker makes no progress.

``celery inspect ping`` is answered by a worker's remote-control channel, also when its consumer stopped
taking messages; this reads what the worker's main process records (``worker.execution.progress``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from worker.execution.progress import verdict
from worker.settings import load_settings


def _probe(args: argparse.Namespace) -> int:
    settings = load_settings()
    path = Path(args.file or settings.worker_progress_file)
    alive, why = verdict(path, args.stall_seconds or settings.worker_stall_seconds)
    print(f"{'ok' if alive else 'FAIL'}: {why}", flush=True)
    return 0 if alive else 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="worker liveness: fail when messages wait and the worker has taken none for a while",
        description="Exit 1 when the worker's queues hold messages and it has taken none, held none and "
        "found its queues empty at no point for IMS_WORKER_WORKER_STALL_SECONDS, or when its progress "
        "record is stale; exit 0 otherwise. Run it where the worker runs (it reads "
        "IMS_WORKER_WORKER_PROGRESS_FILE).",
    )
    parser.add_argument("--file", help="the progress record (default: IMS_WORKER_WORKER_PROGRESS_FILE)")
    parser.add_argument("--stall-seconds", type=float, help="default: IMS_WORKER_WORKER_STALL_SECONDS")
    parser.set_defaults(func=_probe)
