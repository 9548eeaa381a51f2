"""The peer hop's HTTP client: httpx vs aiohttp reading from an s3cache worker, side by side in one run.

A worker serves a 4 KiB and a 64 MiB object from its directory; one asyncio process reads them with each
client at a fixed concurrency for a few seconds (pooled keep-alive connections, bodies read fully) and
with wrk as the no-Python reference. The client the cluster uses for peer reads is chosen by this table.

    python benchmarks/peer_hop.py [--seconds 4] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from rig.processes import Worker  # noqa: E402
from rig.report import header, write_report  # noqa: E402

SIZES = {"4KiB": 4 << 10, "64MiB": 64 << 20}


async def _drive(fetch: Callable[[], Awaitable[int]], concurrency: int, seconds: float) -> tuple[int, int, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    total = 0

    async def one() -> None:
        nonlocal total
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            size = await fetch()  # not `total += await ...`: that reads total before awaiting
            total += size
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return len(latencies), total, latencies


async def with_httpx(url: str, concurrency: int, seconds: float) -> tuple[int, int, list[float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def fetch() -> int:
            size = 0
            async with client.stream("GET", url) as response:
                async for chunk in response.aiter_raw(1 << 20):
                    size += len(chunk)
            return size
        await fetch()
        return await _drive(fetch, concurrency, seconds)


async def with_aiohttp(url: str, concurrency: int, seconds: float) -> tuple[int, int, list[float]]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        async def fetch() -> int:
            size = 0
            async with session.get(url) as response:
                async for chunk in response.content.iter_chunked(1 << 20):
                    size += len(chunk)
            return size
        await fetch()
        return await _drive(fetch, concurrency, seconds)


def with_wrk(url: str, concurrency: int, seconds: float) -> tuple[float, float]:
    out = subprocess.run(["wrk", "-t1", "-c", str(concurrency), "-d", f"{int(seconds)}s", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * {"KB": 1e-3, "MB": 1.0, "GB": 1e3}.get(unit, 1e-6) * 1.048576


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s3cache-hop-"))
    (work / "data" / "bench").mkdir(parents=True)
    for name, size in SIZES.items():
        (work / "data" / "bench" / f"{name}.bin").write_bytes(os.urandom(size))
    worker = Worker(["--data", str(work / "data"), "--log-level", "warning"], work).start()
    rows = []
    try:
        for name in SIZES:
            url = f"{worker.url}/bench/{name}.bin"
            concurrency = args.concurrency if name == "4KiB" else 2
            wrk_rps, wrk_mbps = with_wrk(url, concurrency, args.seconds)
            rows.append((name, "wrk (reference)", wrk_rps, wrk_mbps, None))
            for label, run in (("httpx", with_httpx), ("aiohttp", with_aiohttp)):
                count, total, latencies = asyncio.run(run(url, concurrency, args.seconds))
                latencies.sort()
                p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0.0
                rows.append((name, label, count / args.seconds, total / args.seconds / 1e6, p50))
    finally:
        worker.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = header("Peer hop client: httpx vs aiohttp against one s3cache worker",
                          [f"{args.seconds:.0f}s per row; 4KiB at {args.concurrency} concurrent requests, 64MiB at 2",
                           "client and worker share the 2 cores, as a proxying worker and its peer do"])
    lines += ["| object | client | req/s | MB/s | p50 ms | vs wrk |", "|---|---|---|---|---|---|"]
    reference = {}
    for name, label, rps, mbps, p50 in rows:
        if p50 is None:
            reference[name] = (rps, mbps)
        base = reference[name][0] if name == "4KiB" else reference[name][1]
        mine = rps if name == "4KiB" else mbps
        lines.append(f"| {name} | {label} | {rps:,.0f} | {mbps:,.1f} | {'' if p50 is None else f'{p50:.2f}'} | "
                     f"{mine / base:.2f}x |")
    write_report("peer_hop", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
