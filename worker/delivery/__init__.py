"""Delivery: publish (dedupe + enqueue + outbox in one script), queue routing, the outbox, dead letters and
redrive. Everything that writes task messages or their bookkeeping to Redis."""
