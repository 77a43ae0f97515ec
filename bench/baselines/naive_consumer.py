"""The naive baseline consumer: the SDK's sample loop, as a user would write it by hand.

One message per request: ``receive_message_with_str_body``, ``json.loads``, Celery ``send_task``,
``delete_message``, repeat. Run as ``python -m bench.baselines.naive_consumer`` with the same emulator and
the same Redis as ``ims-worker consume``. The only departure from the sample is ``set_encoding(False)``: IMS
writes plain JSON, and the sample's base64 default would turn every body into garbage.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType

from celery import Celery
from mns.account import Account
from mns.mns_exception import MNSExceptionBase

running = True


def _stop(signum: int, frame: FrameType | None) -> None:
    global running  # noqa: PLW0603 - the sample's stop flag
    running = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--access-key-secret", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--celery-queue", default="naive")
    parser.add_argument("--wait-seconds", type=int, default=3)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)

    app = Celery("naive", broker=args.broker)
    account = Account(args.endpoint, args.access_key_id, args.access_key_secret)
    queue = account.get_queue(args.queue)
    queue.set_encoding(False)
    while running:
        try:
            message = queue.receive_message_with_str_body(args.wait_seconds)
        except MNSExceptionBase as exc:
            if exc.type == "MessageNotExist":
                continue
            print(f"receive failed: {exc}", file=sys.stderr)
            continue
        body = json.loads(message.message_body)
        app.send_task(f"ims.{body['EventType']}", args=[body], queue=args.celery_queue)
        queue.delete_message(message.receipt_handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
