"""The shared rig of the cache benchmarks: a slowed S3 origin, s3cache workers over it, a GET client, reports.

The origin is a real S3 server on 127.0.0.1 seen through ``tests.origin.CountingProxy``, which delays every
request (20 ms by default, a remote-looking round trip) and counts what reaches the origin. The proxy runs in
its own process so its copying threads never share a GIL with the load client. Two origin servers:

- ``dir`` (default): ``s3cache serve --data DIR``, the directory under storage, whose ranged GETs cost the
  bytes they return, as S3's do;
- ``moto``: moto's server; a ranged GET there reads the whole object first (``FakeKey.value``), so a read
  of one block of a large object costs the whole object. Fine for small objects, misleading for large ones.

Every process the rig starts is stopped by its PID when the rig closes, also on errors and SIGTERM.

    python benchmarks/rig.py proxy UPSTREAM_PORT LATENCY_S   (the proxy process; the rig starts it)
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

import tests.origin as origin_module  # noqa: E402
from tests.harness import Worker, stop_process  # noqa: E402
from tests.origin import CountingProxy, MotoOrigin  # noqa: E402

BUCKET = "bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
_WRITE_PIECE = 16 * MiB
_PART_BYTES = 64 * MiB


def size_text(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


def parse_size(text: str) -> int:
    scales = {"K": KiB, "M": MiB, "G": GiB, "T": GiB << 10}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(float(text[:-1]) * scales[text[-1]]) if text and text[-1] in scales else int(text)


def sigterm_raises() -> None:
    """SIGTERM unwinds like Ctrl-C, so every finally block stops what it started."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


# ---- processes -------------------------------------------------------------------------------------


class ProxyProcess:
    """CountingProxy in a child process, driven over its stdin: ``count``, ``reset``; EOF stops it."""

    def __init__(self, upstream_port: int, latency_s: float) -> None:
        self.upstream_port, self.latency_s = upstream_port, latency_s
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProxyProcess:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "proxy", str(self.upstream_port), str(self.latency_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("port "):
            stop_process(self.proc)
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def _ask(self, command: str) -> str:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def counts(self) -> tuple[int, int]:
        """(object GETs, all requests) the origin received since the last reset."""
        gets, total = self._ask("count").split()
        return int(gets), int(total)

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
        self.proc = None


class _ProxyServer(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 drops SYNs when many connections open at once: 1 s retransmit stalls.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a stopped worker resets its pooled connections
            super().handle_error(request, client_address)


def _proxy_main(upstream_port: int, latency_s: float) -> None:
    origin_module.ThreadingHTTPServer = _ProxyServer  # type: ignore[misc]
    proxy = CountingProxy(upstream_port, latency_s=latency_s).start()
    print(f"port {proxy.port}", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(proxy.object_gets()), len(proxy.requests()), flush=True)
            elif line.strip() == "reset":
                proxy.reset()
                print("ok", flush=True)
    finally:
        proxy.stop()


@dataclass
class Rig:
    """A slowed origin holding bucket ``bench``, and s3cache workers in front of it; a context manager."""

    latency_s: float = 0.02
    origin_server: str = "dir"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="s3cache-bench-")))
    proxy: ProxyProcess | None = None
    _origin: Worker | MotoOrigin | None = None
    _workers: list[Worker] = field(default_factory=list)
    _s3: Any = None

    def __enter__(self) -> Rig:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def data_dir(self) -> Path:
        return self.workdir / "origin-data"

    @property
    def direct_url(self) -> str:
        """The origin without the delay: for setup only, never measured."""
        assert self._origin is not None
        return self._origin.url

    @property
    def origin_url(self) -> str:
        """The origin as s3cache and the 'direct' rows see it: through the slowing proxy."""
        assert self.proxy is not None
        return self.proxy.url

    def start(self) -> None:
        if self.origin_server == "dir":
            (self.data_dir / BUCKET).mkdir(parents=True, exist_ok=True)
            self._origin = Worker(["--data", str(self.data_dir), "--log-level", "warning"], self.workdir)
            self._origin.start()  # assigned first: close() stops it even if it never answers
        elif self.origin_server == "moto":
            import boto3  # test dependencies, needed only here
            from botocore.config import Config

            self._origin = MotoOrigin(self.workdir)
            self._origin.start()
            # moto completes a multipart upload in memory: minutes (and ~4x the object in RSS) for gigabytes.
            self._s3 = boto3.client("s3", endpoint_url=self._origin.url, region_name="us-east-1",
                                    aws_access_key_id="bench", aws_secret_access_key="bench",
                                    config=Config(read_timeout=1800, retries={"max_attempts": 1}))
            self._s3.create_bucket(Bucket=BUCKET)
        else:
            raise ValueError(f"unknown origin server {self.origin_server!r}")
        self.proxy = ProxyProcess(self._origin.port, self.latency_s).start()

    def close(self) -> None:
        for worker in reversed(self._workers):
            worker.stop()
        self._workers.clear()
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self._origin is not None:
            self._origin.stop()
            self._origin = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- objects at the origin -----------------------------------------------------------------------

    def _file(self, key: str) -> Path:
        path = self.data_dir / BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def put_random(self, key: str, size: int) -> str:
        """A new object of size random bytes; returns its MD5 (hex)."""
        digest = hashlib.md5()
        if self.origin_server == "dir":
            with open(self._file(key), "wb") as fh:
                for piece in _random_pieces(size):
                    digest.update(piece)
                    fh.write(piece)
            return digest.hexdigest()
        if size <= _PART_BYTES:
            data = os.urandom(size)
            self._s3.put_object(Bucket=BUCKET, Key=key, Body=data, ACL="public-read")
            return hashlib.md5(data).hexdigest()
        upload = self._s3.create_multipart_upload(Bucket=BUCKET, Key=key, ACL="public-read")["UploadId"]
        parts = []
        for number, offset in enumerate(range(0, size, _PART_BYTES), start=1):
            part = b"".join(_random_pieces(min(_PART_BYTES, size - offset)))
            digest.update(part)
            etag = self._s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=number, Body=part)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        self._s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
        return digest.hexdigest()

    def put_small(self, keys: Iterable[str], size: int) -> None:
        """Many small random objects."""
        for key in keys:
            if self.origin_server == "dir":
                self._file(key).write_bytes(os.urandom(size))
            else:
                self._s3.put_object(Bucket=BUCKET, Key=key, Body=os.urandom(size), ACL="public-read")

    def copy(self, source: str, key: str) -> None:
        """Another key with the same bytes: different block ids, so a cold read of it misses everywhere."""
        if self.origin_server == "dir":
            os.link(self._file(source), self._file(key))
        else:
            self._s3.copy_object(Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": source},
                                 ACL="public-read")

    def prime(self, keys: Iterable[str]) -> None:
        """HEAD each key at the origin directly, so a directory origin has its ETag before anything is timed."""
        with httpx.Client(timeout=600) as client:
            for key in keys:
                client.head(f"{self.direct_url}/{BUCKET}/{key}").raise_for_status()

    # ---- s3cache -----------------------------------------------------------------------------------

    def worker(self, block_size: str = "4M", capacity: str = "8G", eviction: str = "lru", *extra: str) -> Worker:
        """A fresh s3cache worker (empty cache directory) in front of the slowed origin."""
        cache_dir = Path(tempfile.mkdtemp(prefix="cache-", dir=self.workdir))
        worker = Worker(["--origin", self.origin_url, "--cache-dir", str(cache_dir), "--cache-capacity", capacity,
                         "--block-size", block_size, "--metadata-ttl", "3600", "--eviction", eviction,
                         "--log-level", "warning", *extra], self.workdir, env=dict(CREDENTIALS))
        self._workers.append(worker)
        return worker.start()

    def stop_worker(self, worker: Worker) -> None:
        worker.stop()
        if worker in self._workers:
            self._workers.remove(worker)


def _random_pieces(size: int) -> Iterator[bytes]:
    for offset in range(0, size, _WRITE_PIECE):
        yield os.urandom(min(_WRITE_PIECE, size - offset))


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and friends of a process, in bytes."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name.startswith("Vm") and rest.strip().endswith("kB"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process (all its threads) has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False when the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ---- reports ----------------------------------------------------------------------------------------


def header(title: str, notes: Iterable[str]) -> list[str]:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return [
        f"# {title}",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        f"- commit: {commit}; date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        *[f"- {note}" for note in notes],
        "",
    ]


def write_report(name: str, text: str) -> Path:
    print(text)
    out = ROOT / "benchmarks" / "results" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")
    return out


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


if __name__ == "__main__" and sys.argv[1:2] == ["proxy"]:
    _proxy_main(int(sys.argv[2]), float(sys.argv[3]))
