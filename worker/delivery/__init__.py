"""Delivery: publish (dedupe + enqueue + outbox in one script), the handler ledger, the outbox,
dead letters and redrive. Everything that writes task messages or their bookkeeping to Redis."""
