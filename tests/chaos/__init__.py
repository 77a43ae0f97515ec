"""Chaos and soak scenarios (``make chaos``, ``make soak MINUTES=N``): the whole service under mixed load and
repeated faults, each scenario ending with the event-ledger check. See RELIABILITY.md."""
