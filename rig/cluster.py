"""s3cache as it is deployed: nginx (the shipped config) in front of three workers that share one Redis and
cache one S3 origin (moto's server), each a real process on a free 127.0.0.1 port.

Every worker writes an access log (user, operation, bucket, key, status per request), which ``Cluster.access``
reads back: a client given its own access key can tell which requests were its own, and which were answered
with a 307.
"""

from __future__ import annotations

import ast
import concurrent.futures
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

from rig.nginx import Nginx
from rig.origin import ORIGIN_ENV, MotoOrigin
from rig.processes import Worker, s3_env
from rig.redis import RedisServer

SECRET = "clients-cluster-secret"
WORKER_IDS = ("w0", "w1", "w2")
# <user> <operation> <bucket> <key> <status> <bytes> <latency>ms <request id> <cache> <served by> (proxy/app.py's _log)
ACCESS = re.compile(r"s3cache\.access (\S+) (\S+) (\S+) (.*) (\d{3}) (\d+) [\d.]+ms \S+ \S+ \S+$", re.MULTILINE)


@dataclass(frozen=True)
class Access:
    """One access-log line of a worker."""

    worker: str
    user: str
    operation: str
    bucket: str
    key: str
    status: int


@dataclass
class Cluster:
    mode: str
    origin: MotoOrigin
    workdir: Path
    redis: RedisServer
    workers: dict[str, Worker] = field(default_factory=dict)
    nginx: Nginx | None = None
    extra_args: list[str] = field(default_factory=list)  # given to every worker (a --config of its own, say)

    @property
    def url(self) -> str:
        """The load-balanced endpoint every client uses."""
        assert self.nginx is not None
        return self.nginx.url

    def start(self) -> Cluster:
        self.redis.start()
        for wid in WORKER_IDS:
            workdir = self.workdir / wid
            workdir.mkdir()
            args = ["--data", str(workdir / "data"), "--origin", self.origin.url, "--cache-dir", str(workdir / "blocks"),
                    "--cache-capacity", "512M", "--block-size", "1M", "--redis", self.redis.url,
                    "--cluster-secret", SECRET, "--worker-id", wid, "--data-path", self.mode, *self.extra_args]
            self.workers[wid] = Worker(args, workdir, env=dict(ORIGIN_ENV), backend="s3")
        with concurrent.futures.ThreadPoolExecutor(len(self.workers)) as pool:
            for future in [pool.submit(w.start) for w in self.workers.values()]:
                future.result()
        self.wait_membership()
        self.nginx = Nginx([f"127.0.0.1:{w.port}" for w in self.workers.values()]).start()
        return self

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for w in self.workers.values():
            w.stop()
        self.redis.stop()

    def wait_membership(self, timeout_s: float = 20.0) -> None:
        """Until every worker's snapshot of the live set holds all three (from their logs)."""
        want = ", ".join(WORKER_IDS)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            last = [re.findall(r"live workers: (.*)$", w.log(), re.MULTILINE) for w in self.workers.values()]
            if all(lines and lines[-1] == want for lines in last):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the workers did not all see {want}")

    def access(self, user: str | None = None, bucket: str | None = None) -> list[Access]:
        """Every access-log line of the three workers, optionally only one user's or one bucket's.

        A worker logs a request after its response has gone out, so a client can be done before the line is
        written: read until the logs stop growing for a moment."""
        logs = {wid: w.log() for wid, w in self.workers.items()}
        deadline, steady = time.monotonic() + 5, 0
        while steady < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            again = {wid: w.log() for wid, w in self.workers.items()}
            steady = steady + 1 if again == logs else 0
            logs = again
        found = []
        for wid, log in logs.items():
            for u, op, b, k, status, _ in ACCESS.findall(log):
                key = ast.literal_eval(k) if k[:1] in "'\"" else k
                entry = Access(wid, u, op, b, key, int(status))
                if (user is None or u == user) and (bucket is None or b == bucket):
                    found.append(entry)
        return found

    def boto3(self, user: str = "tester"):  # type: ignore[no-untyped-def]
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=user, aws_secret_access_key="secret",
                            region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))

    def bucket(self, prefix: str) -> str:
        """A new bucket, created through the cluster (it lands at the origin)."""
        name = f"{prefix}-{self.mode}-{uuid.uuid4().hex[:8]}"
        self.boto3().create_bucket(Bucket=name)
        return name

    def env(self, user: str) -> dict[str, str]:
        """Environment for a CLI client using the cluster as its endpoint, as user."""
        return s3_env(self.url, user)
