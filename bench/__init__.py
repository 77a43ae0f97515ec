"""Whole-system benchmarks with side-by-side naive baselines: ``python -m bench.run_all [--smoke]``.

Every benchmark starts its own private redis-server and its own emulator, shim and worker processes on
127.0.0.1, bounds itself in time and stops everything it started. Nothing here is imported by ``worker``.
"""
