"""What the suite measures among: the origin model, s3cache workers over it, and the references' servers.

``Stage`` is ``rig.bench.Rig`` over moto's server (``RangedMoto``: ranged GETs read only their range) seen
through the relay (``rig.origin.ProxyProcess``) that adds a first-byte latency to every request and caps each
connection's response rate. Everything is on 127.0.0.1 and stopped by its PID when the stage closes.

It also holds the clients every workload uses: a boto3 client (``s3``), the boto3 16-thread pool of
GetObjects (``pool_gets``), the transfer manager (``transfer``), and a static nginx serving files
(``StaticNginx``).
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from benchmarks.suite.moto_server import RangedMoto
from rig.bench import BUCKET, CREDENTIALS, Rig
from rig.nginx import start_nginx
from rig.origin import ProxyProcess
from rig.processes import Worker, free_port, stop_process, wait_http
from rig.report import MiB

TRANSFER = TransferConfig(max_concurrency=10, multipart_chunksize=8 * MiB)  # the reference for large objects
POOL_THREADS = 16  # the reference for small objects: a 16-thread pool of GetObjects


@dataclass
class Stage(Rig):
    """rig.bench.Rig over RangedMoto, seen through a relay with a latency and a per-connection rate cap."""

    rate_bytes_s: float = 80e6
    origin_core: int | None = None  # the one CPU the origin (moto and the relay) runs on; everything else the rest
    origin_server: str = "moto"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="s3cache-suite-")))

    def start(self) -> None:
        self._origin = RangedMoto(self.workdir)
        self._origin.start()  # assigned first: close() stops it even if it never answers
        # moto completes a multipart upload in memory; long reads for gigabytes
        self._s3 = boto3.client("s3", endpoint_url=self._origin.url, region_name="us-east-1",
                                aws_access_key_id="bench", aws_secret_access_key="bench",
                                config=Config(read_timeout=1800, retries={"max_attempts": 1},
                                              max_pool_connections=POOL_THREADS))
        self._s3.create_bucket(Bucket=BUCKET)
        self.proxy = ProxyProcess(self._origin.port, self.latency_s, self.rate_bytes_s).start()
        if self.origin_core is not None:
            assert self._origin.proc is not None and self.proxy.proc is not None
            split_cores(self.origin_core, [self._origin.proc.pid, self.proxy.proc.pid])

    @property
    def relay(self) -> ProxyProcess:
        assert self.proxy is not None
        return self.proxy

    def put_many(self, objects: dict[str, bytes]) -> None:
        """Objects at the origin (directly, not through the relay), 8 at a time."""
        def put(item: tuple[str, bytes]) -> None:
            self._s3.put_object(Bucket=BUCKET, Key=item[0], Body=item[1], ACL="public-read")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(put, objects.items()))

    def worker_with(self, settings: str = "", *extra: str, block_size: str = "4M", capacity: str = "8G") -> Worker:
        """A fresh worker (empty cache) over the relay, s3fifo eviction, with TOML settings added if given."""
        args = list(extra)
        if settings:
            config = Path(tempfile.mkstemp(suffix=".toml", dir=self.workdir)[1])
            config.write_text(settings)
            args = ["--config", str(config), *args]
        return self.worker(block_size, capacity, "s3fifo", *args)


def split_cores(origin_core: int, origin_pids: list[int]) -> None:
    """Every thread of the origin's processes on origin_core alone; this process (and so every worker, client and
    nginx it starts from now on, which inherit it) on the other cores. A remote S3 spends none of the cores the
    cache and its clients run on; on one shared machine, without this, the origin's own CPU competes with theirs."""
    others = set(range(os.cpu_count() or 1)) - {origin_core}
    if not others:
        raise ValueError(f"--origin-core {origin_core}: no core would be left for the rest")
    for pid in origin_pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), {origin_core})
    os.sched_setaffinity(0, others)


def s3(endpoint: str, pool: int = POOL_THREADS) -> Any:
    """A boto3 client as a user makes one: path style, its own keys (s3cache's simple auth takes any)."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=CREDENTIALS[
        "AWS_ACCESS_KEY_ID"], aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool, read_timeout=600,
                      retries={"max_attempts": 1}))


@dataclass
class Timed:
    """A pass of requests: each one's latency, the bytes received, and the wall time of the whole."""

    latencies_s: list[float]
    bytes: int
    elapsed_s: float

    @property
    def per_s(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MiB / self.elapsed_s if self.elapsed_s else 0.0


def pool_gets(client: Any, keys: list[str], threads: int = POOL_THREADS) -> Timed:
    """GetObject of every key from a pool of threads, each body read whole: the small-object reference."""
    def one(key: str) -> tuple[float, int]:
        began = time.perf_counter()
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return time.perf_counter() - began, len(body)

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(one, keys))
    return Timed([d[0] for d in done], sum(d[1] for d in done), time.perf_counter() - began)


class _Sink:
    """A seekable file that keeps nothing: the transfer manager writes its parts here."""

    def __init__(self) -> None:
        self.size = 0
        self._at = 0

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._at = offset if whence == 0 else self._at + offset if whence == 1 else self.size + offset
        return self._at

    def tell(self) -> int:
        return self._at

    def write(self, data: bytes) -> int:
        self._at += len(data)
        self.size = max(self.size, self._at)
        return len(data)


def transfer(client: Any, key: str) -> Timed:
    """s3.download_fileobj with the transfer manager (10 threads, 8 MiB parts): the large-object reference."""
    sink = _Sink()
    began = time.perf_counter()
    client.download_fileobj(BUCKET, key, sink, Config=TRANSFER)
    elapsed = time.perf_counter() - began
    return Timed([elapsed], sink.size, elapsed)


def get_whole(client: Any, key: str) -> Timed:
    """One GetObject of the whole object, its body read in 1 MiB pieces and dropped."""
    began = time.perf_counter()
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
    size = 0
    while piece := body.read(MiB):
        size += len(piece)
    elapsed = time.perf_counter() - began
    return Timed([elapsed], size, elapsed)


def run_timed(calls: Iterable[Callable[[], Timed]]) -> Timed:
    """Several Timed passes one after another, as one."""
    parts = [call() for call in calls]
    return Timed([s for p in parts for s in p.latencies_s], sum(p.bytes for p in parts),
                 sum(p.elapsed_s for p in parts))


@dataclass
class StaticNginx:
    """nginx serving a directory of files (the warm-read reference): sendfile, no access log, one worker."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="s3cache-static-")))
    port: int = 0
    proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, key: str, data: bytes) -> None:
        path = self.root / "data" / BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        for folder in [path.parent, *path.parent.parents]:  # nginx's unprivileged worker must reach it
            if folder == self.root.parent:
                break
            folder.chmod(0o755)
        path.chmod(0o644)

    def start(self) -> StaticNginx:
        self.port = self.port or free_port()
        self.root.chmod(0o755)
        (self.root / "data").mkdir(exist_ok=True)
        (self.root / "data").chmod(0o755)
        self.proc = start_nginx(self.root, f"""
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{self.port};
        access_log off;
        root {self.root / "data"};
        location / {{ }}
    }}""")
        wait_http(self.url + "/", proc=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
