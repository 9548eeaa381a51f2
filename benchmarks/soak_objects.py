"""The soak's objects, named and sized once for the stage that puts them (``benchmarks/soak.py``) and the load that
reads them (``benchmarks/soak_load.py``, which must import locust before anything else: it patches for gevent)."""

from __future__ import annotations

BUCKET = "soak"
SMALL_BYTES = 16 << 10


def small_key(index: int) -> str:
    return f"small/{index // 100:03d}/{index:05d}"


def large_key(index: int) -> str:
    return f"large/{index:02d}"
