"""Fleet-wide flow control for handlers: per-key serialization, shared rate limits, concurrency caps.

``@handler(pattern, key=..., stale="skip", rate="20/s", concurrency=5)`` declares them (``options``); the task
wrapper asks the ``FlowGate`` before each run (``gate``), which talks to Redis through one script per decision
(``scripts``); deferral counts are readable fleet-wide (``metrics``).
"""

from worker.execution.flow.options import FlowOptions, Rate, build_options, parse_rate

__all__ = ["FlowOptions", "Rate", "build_options", "parse_rate"]
