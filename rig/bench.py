"""The benchmarks' setup: a slowed S3 origin holding bucket ``bench``, and s3cache workers over it.

The origin is a real S3 server on 127.0.0.1 seen through ``rig.origin.CountingProxy``, which delays every
request (20 ms by default, a remote-looking round trip) and counts what reaches the origin. The proxy runs in
its own process (``rig.origin.ProxyProcess``) so its copying threads never share a GIL with the load client.
Two origin servers:

- ``dir`` (default): ``s3cache serve --data DIR``, the directory under storage, whose ranged GETs cost the
  bytes they return, as S3's do;
- ``moto``: moto's server; a ranged GET there reads the whole object first (``FakeKey.value``), so a read
  of one block of a large object costs the whole object. Fine for small objects, misleading for large ones.

Every process the rig starts is stopped by its PID when the rig closes, also on errors and SIGTERM
(with ``rig.processes.sigterm_raises``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rig.origin import MotoOrigin, ProxyProcess
from rig.processes import Worker
from rig.report import MiB

BUCKET = "bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
_WRITE_PIECE = 16 * MiB
_PART_BYTES = 64 * MiB


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
