"""`s3cache load s3://bucket/prefix`: warm a prefix into the cache by reading every object through an endpoint.

Objects are listed with ListObjectsV2 and read with GETs through the endpoint (any worker, or the load
balancer), several at a time; the bytes are discarded, the workers keep the blocks. A progress bar shows
objects and bytes; the summary says how long it took and what failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httpx
from defusedxml import ElementTree
from tqdm import tqdm


@dataclass
class LoadReport:
    objects: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)


def parse_target(target: str) -> tuple[str, str]:
    parts = urlsplit(target)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{target!r}: expected s3://bucket[/prefix]")
    return parts.netloc, parts.path.lstrip("/")


async def _list(client: httpx.AsyncClient, endpoint: str, bucket: str, prefix: str) -> list[tuple[str, int]]:
    objects: list[tuple[str, int]] = []
    token = None
    while True:
        params = {"list-type": "2", "prefix": prefix, **({"continuation-token": token} if token else {})}
        response = await client.get(f"{endpoint}/{quote(bucket)}", params=params)
        response.raise_for_status()
        root = ElementTree.fromstring(response.content)
        ns = root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else ""
        for item in root.iter(f"{ns}Contents"):
            objects.append((item.findtext(f"{ns}Key") or "", int(item.findtext(f"{ns}Size") or 0)))
        token = root.findtext(f"{ns}NextContinuationToken")
        if not token:
            return objects


async def load(endpoint: str, target: str, concurrency: int, progress: bool = True) -> LoadReport:
    bucket, prefix = parse_target(target)
    report = LoadReport()
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300, connect=10)) as client:
        objects = await _list(client, endpoint.rstrip("/"), bucket, prefix)
        bar = tqdm(total=sum(size for _, size in objects), unit="B", unit_scale=True, unit_divisor=1024,
                   desc=f"warming {len(objects)} objects", disable=not progress, file=sys.stderr)
        slots = asyncio.Semaphore(concurrency)

        async def read(key: str) -> None:
            async with slots:
                try:
                    async with client.stream("GET", f"{endpoint.rstrip('/')}/{quote(bucket)}/{quote(key)}") as resp:
                        resp.raise_for_status()
                        async for chunk in resp.aiter_raw(1 << 20):
                            report.bytes += len(chunk)
                            bar.update(len(chunk))
                    report.objects += 1
                except httpx.HTTPError as error:
                    report.failed.append(f"{key}: {error}")

        await asyncio.gather(*(read(key) for key, _ in objects))
        bar.close()
    report.seconds = time.monotonic() - started
    return report


def summary(target: str, report: LoadReport) -> str:
    rate = report.bytes / report.seconds / 1e6 if report.seconds else 0.0
    line = (f"warmed {report.objects} objects, {report.bytes} bytes of {target} in {report.seconds:.1f} s "
            f"({rate:.1f} MB/s)")
    if report.failed:
        line += f"; {len(report.failed)} failed:\n  " + "\n  ".join(report.failed[:20])
    return line


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    warm = commands.add_parser("load", help="warm a prefix into the cache (with a progress bar)",
                               description="Read every object under s3://bucket/prefix through an endpoint so the "
                               "cluster caches it; the bytes are discarded.")
    warm.add_argument("target", metavar="s3://bucket/prefix")
    warm.add_argument("--endpoint", default="http://127.0.0.1:29998", metavar="URL",
                      help="a worker or the load balancer (default http://127.0.0.1:29998)")
    warm.add_argument("--concurrency", type=int, default=8, help="objects read at once (default 8)")
    warm.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(load(args.endpoint, args.target, args.concurrency, not args.quiet))
    except (ValueError, httpx.HTTPError) as error:
        print(f"s3cache load: {error}", file=sys.stderr)
        return 2
    print(summary(args.target, report))
    return 1 if report.failed else 0
