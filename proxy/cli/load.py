"""`s3cache load s3://bucket/prefix`: warm a prefix into the cluster's cache through any endpoint.

Objects are listed with ListObjectsV2; each is first asked for with a HEAD carrying `Cache-Control: only-if-cached`
(answered 200 when every block is already held somewhere in the cluster, 504 when not), so a second run, or one
after an interrupted run, skips what is cached. The others are read with a GET, several at a time, and the bytes
discarded: the worker that takes the GET routes each cold block to its owner, which fetches it from the origin
once, so every block lands on its owner whichever worker the load balancer picked. `--dry-run` lists what would
be fetched and fetches nothing. A progress bar shows objects, bytes, throughput and ETA; the summary says what
was loaded, what was skipped, and what failed and why.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit
from xml.etree.ElementTree import Element

import httpx
from defusedxml import ElementTree
from tqdm import tqdm

ONLY_IF_CACHED = {"cache-control": "only-if-cached"}
NOT_CACHED = 504  # RFC 9111: the answer to only-if-cached when the cache cannot serve it
FAILURES_SHOWN = 5  # keys named per reason in the summary


@dataclass
class LoadReport:
    listed: int = 0
    objects: int = 0  # loaded now
    bytes: int = 0
    skipped: int = 0  # already cached
    skipped_bytes: int = 0
    seconds: float = 0.0
    planned: list[tuple[str, int]] = field(default_factory=list)  # what a dry run would fetch
    failed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # reason -> keys


def parse_target(target: str) -> tuple[str, str]:
    parts = urlsplit(target)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{target!r}: expected s3://bucket[/prefix]")
    return parts.netloc, parts.path.lstrip("/")


def _xml_root(body: bytes) -> tuple[Element, str] | None:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None
    return root, (root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else "")


def _reason(response: httpx.Response, body: bytes = b"") -> str:
    """What went wrong, as S3 said it: the status and the error code (from the XML, or a HEAD's headers)."""
    parsed = _xml_root(body) if body else None
    code = parsed[0].findtext("Code") if parsed is not None else None
    return f"{response.request.method} {response.status_code} {code or response.reason_phrase}"


async def list_objects(client: httpx.AsyncClient, endpoint: str, bucket: str, prefix: str) -> list[tuple[str, int]]:
    objects: list[tuple[str, int]] = []
    token = None
    while True:
        params = {"list-type": "2", "prefix": prefix, **({"continuation-token": token} if token else {})}
        response = await client.get(f"{endpoint}/{quote(bucket)}", params=params)
        if response.status_code != 200:
            raise ValueError(f"listing s3://{bucket}/{prefix}: {_reason(response, response.content)}")
        parsed = _xml_root(response.content)
        if parsed is None:
            raise ValueError(f"listing s3://{bucket}/{prefix}: not an S3 listing")
        root, ns = parsed
        for item in root.iter(f"{ns}Contents"):
            objects.append((item.findtext(f"{ns}Key") or "", int(item.findtext(f"{ns}Size") or 0)))
        token = root.findtext(f"{ns}NextContinuationToken")
        if not token:
            return objects


class Loader:
    def __init__(self, client: httpx.AsyncClient, endpoint: str, bucket: str, dry_run: bool, bar: tqdm) -> None:
        self.client, self.endpoint, self.bucket, self.dry_run, self.bar = client, endpoint, bucket, dry_run, bar
        self.report = LoadReport()

    def _url(self, key: str) -> str:
        return f"{self.endpoint}/{quote(self.bucket)}/{quote(key)}"

    def _done(self, objects: int = 0) -> None:
        self.bar.set_postfix_str(f"{self.report.objects + self.report.skipped}/{self.report.listed} objects, "
                                 f"{self.report.skipped} cached, {sum(map(len, self.report.failed.values()))} failed",
                                 refresh=objects > 0)

    async def one(self, key: str, size: int) -> None:
        report = self.report
        try:
            head = await self.client.head(self._url(key), headers=ONLY_IF_CACHED)
            if head.status_code == 200:
                report.skipped += 1
                report.skipped_bytes += size
                self.bar.total -= size  # the bar measures what is fetched: throughput and ETA stay true
                self.bar.refresh()
                return
            if head.status_code != NOT_CACHED:
                report.failed[_reason(head)].append(key)
                return
            if self.dry_run:
                report.planned.append((key, size))
                return
            async with self.client.stream("GET", self._url(key)) as response:
                if response.status_code != 200:
                    report.failed[_reason(response, await response.aread())].append(key)
                    return
                got = 0
                async for chunk in response.aiter_raw(1 << 20):
                    got += len(chunk)
                    report.bytes += len(chunk)
                    self.bar.update(len(chunk))
                if got != size:  # the object changed since it was listed, or the stream was cut
                    report.failed[f"GET read {got} of {size} bytes listed"].append(key)
                    return
            report.objects += 1
        except httpx.HTTPError as error:
            report.failed[f"{type(error).__name__}: {error}"].append(key)
        finally:
            self._done(1)


async def load(endpoint: str, target: str, concurrency: int, progress: bool = True,
               dry_run: bool = False) -> LoadReport:
    bucket, prefix = parse_target(target)
    endpoint = endpoint.rstrip("/")
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300, connect=10)) as client:
        objects = await list_objects(client, endpoint, bucket, prefix)
        bar = tqdm(total=sum(size for _, size in objects), unit="B", unit_scale=True, unit_divisor=1024,
                   desc="checking" if dry_run else "loading", disable=not progress, file=sys.stderr)
        loader = Loader(client, endpoint, bucket, dry_run, bar)
        loader.report.listed = len(objects)
        slots = asyncio.Semaphore(concurrency)

        async def bounded(key: str, size: int) -> None:
            async with slots:
                await loader.one(key, size)

        try:
            await asyncio.gather(*(bounded(key, size) for key, size in objects))
        finally:
            bar.close()
    loader.report.seconds = time.monotonic() - started
    return loader.report


def summary(target: str, report: LoadReport, dry_run: bool = False) -> str:
    if dry_run:
        lines = [f"{key}\t{size}" for key, size in report.planned]
        lines.append(f"would fetch {len(report.planned)} objects, {sum(s for _, s in report.planned)} bytes of "
                     f"{target}; {report.skipped} objects ({report.skipped_bytes} bytes) already cached")
    else:
        rate = report.bytes / report.seconds / 1e6 if report.seconds else 0.0
        lines = [f"loaded {report.objects} objects, {report.bytes} bytes of {target} in {report.seconds:.1f} s "
                 f"({rate:.1f} MB/s); {report.skipped} objects ({report.skipped_bytes} bytes) already cached, skipped"]
    failed = sum(map(len, report.failed.values()))
    if failed:
        lines.append(f"{failed} failed:")
        for reason, keys in sorted(report.failed.items(), key=lambda item: -len(item[1])):
            more = f" and {len(keys) - FAILURES_SHOWN} more" if len(keys) > FAILURES_SHOWN else ""
            lines.append(f"  {len(keys)} x {reason}: {', '.join(keys[:FAILURES_SHOWN])}{more}")
    return "\n".join(lines)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    warm = commands.add_parser("load", help="warm a prefix into the cache (resumable, with a progress bar)",
                               description="Read every object under s3://bucket/prefix through an endpoint so the "
                               "cluster caches it (each block fetched once, by its owner); objects already cached "
                               "are skipped. Exit status 1 if any object failed.")
    warm.add_argument("target", metavar="s3://bucket/prefix")
    warm.add_argument("--endpoint", default="http://127.0.0.1:29998", metavar="URL",
                      help="a worker or the load balancer (default http://127.0.0.1:29998)")
    warm.add_argument("--concurrency", type=int, default=8, metavar="N", help="objects read at once (default 8)")
    warm.add_argument("--dry-run", action="store_true", help="list what would be fetched; fetch nothing")
    warm.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        print("s3cache load: --concurrency must be at least 1", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(load(args.endpoint, args.target, args.concurrency, not args.quiet, args.dry_run))
    except (ValueError, httpx.HTTPError) as error:
        print(f"s3cache load: {error}", file=sys.stderr)
        return 2
    print(summary(args.target, report, args.dry_run))
    return 1 if report.failed else 0
