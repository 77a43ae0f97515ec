"""The handler of the flow-control benchmark: ``bench.probe.record`` with the one option that
``BENCH_FLOW_OPTION`` names (``none``, ``key``, ``rate``, ``concurrency``), set so that it never has to wait:
the benchmark measures what an option costs when it does not bite (a Redis script per run, the lease
renewals), not the waiting.
"""

from __future__ import annotations

import os

from bench.probe import record
from worker import Event, handler

OPTION = os.environ.get("BENCH_FLOW_OPTION", "none")


def media_key(event: Event) -> str:
    # The field lookup a key="MediaId" handler does, with the event id for the types that carry no MediaId,
    # so that every event has a key and no two share one.
    from worker.execution.flow.options import key_value  # noqa: PLC0415 - absent in the baseline tree

    return key_value("MediaId", event) or event.id


if OPTION == "none":
    handler("ims.*")(record)
elif OPTION == "key":
    handler("ims.*", key=media_key)(record)
elif OPTION == "rate":
    handler("ims.*", rate="100000/s")(record)
elif OPTION == "concurrency":
    handler("ims.*", concurrency=1000)(record)
else:
    raise ValueError(f"BENCH_FLOW_OPTION={OPTION!r}: none, key, rate or concurrency")
