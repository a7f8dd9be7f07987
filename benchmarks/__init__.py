"""Throughput, latency and footprint harness for taskstore, with peers side by side.

Run ``python -m benchmarks --help``. Every scenario runs on a fresh database of its own
(a temporary SQLite file, or a ``bench_*`` PostgreSQL database dropped afterwards) and
drives real ``taskstore-worker`` processes, so the figures include what a user pays.
"""
