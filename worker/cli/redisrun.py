"""The read and repair commands' one way of saying that Redis is down (``dlq``, ``trace``, ``events recent``,
``replay``): one line on stderr naming the redacted URL and the cause, exit 1, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from worker.redact import redact_text, redact_url
from worker.redisconn import REDIS_ERRORS


def run_against_redis(command: str, url: str, body: Callable[[], int]) -> int:
    """``body()``'s exit status, or 1 with one line on stderr if the Redis at ``url`` (the one the command
    asks: ``worker.cli.target``) could not be reached meanwhile."""
    try:
        return body()
    except BrokenPipeError:
        raise  # stdout's reader left (`| head`): an OSError, but not a Redis problem; main() exits quietly
    except REDIS_ERRORS as exc:
        detail = redact_text(str(exc)) or type(exc).__name__
        print(f"ims-worker {command}: Redis at {redact_url(url)} is unreachable: {detail}", file=sys.stderr)
        return 1
