"""The benchmarks' GET load client: aiohttp over pooled connections, latencies per request, bytes counted.

aiohttp rather than httpx: measured here it costs several times less per request (benchmarks/peer_hop.py),
so the client disturbs the numbers of the server under test less. It follows redirects.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

MiB = 1 << 20



@dataclass
class Load:
    latencies_s: list[float]
    bytes: int
    elapsed_s: float

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MiB / self.elapsed_s if self.elapsed_s else 0.0


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max by nearest rank, in milliseconds."""
    if not samples:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan}
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": ordered[-1] * 1000}


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
                                 timeout=aiohttp.ClientTimeout(total=600), auto_decompress=False)


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None,
               digest: Any = None) -> int:
    async with session.get(url, headers=headers) as response:
        if response.status not in (200, 206):
            raise RuntimeError(f"GET {url}: HTTP {response.status}: {(await response.read())[:300]!r}")
        received = 0
        async for chunk in response.content.iter_any():
            received += len(chunk)
            if digest is not None:
                digest.update(chunk)
        expected = response.headers.get("content-length")
        if expected is not None and int(expected) != received:
            raise RuntimeError(f"GET {url}: {received} bytes, Content-Length {expected}")
        return received


async def _load(requests: Iterator[tuple[str, dict[str, str] | None]], concurrency: int, seconds: float) -> Load:
    latencies: list[float] = []
    total = 0
    start = time.perf_counter()
    deadline = start + seconds
    last = start

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal total, last
        while time.perf_counter() < deadline:
            item = next(requests, None)
            if item is None:
                return
            began = time.perf_counter()
            received = await _get(session, item[0], item[1])  # not `total += await ...`: that reads total first
            total += received
            last = time.perf_counter()
            latencies.append(last - began)

    async with _session(concurrency) as session:
        await asyncio.gather(*(one(session) for _ in range(concurrency)))
    return Load(latencies, total, last - start)


def run_load(requests: Iterable[str | tuple[str, dict[str, str] | None]], concurrency: int, seconds: float) -> Load:
    """GET the URLs (optionally with headers) from concurrency connections until they run out or time is up."""
    items = ((r, None) if isinstance(r, str) else r for r in requests)
    return _run(_load(iter(items), concurrency, seconds))


def fetch_md5(url: str, headers: dict[str, str] | None = None) -> tuple[str, int, float]:
    """(MD5 hex, bytes, seconds) of one GET, hashed as it streams."""
    async def go() -> tuple[str, int, float]:
        digest = hashlib.md5()
        began = time.perf_counter()
        async with _session(1) as session:
            received = await _get(session, url, headers, digest)
        return digest.hexdigest(), received, time.perf_counter() - began
    return _run(go())


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
