"""Real S3 clients against s3cache as it is deployed: nginx (the shipped config) in front of three workers
that share one Redis and cache one S3 origin (moto's server).

A test that takes ``cluster`` runs once per data path named by its ``modes`` marker (``proxy`` when it has
none). The cluster of a mode is started once for the session; pytest groups the tests by mode, so one cluster
runs at a time and is stopped before the next mode's starts. Each test writes into a bucket of its own.

Every client is given its own access key, so the workers' access logs (user, operation, bucket, key,
status per request) tell which requests were that client's, and whether they were answered with a 307.
"""

from __future__ import annotations

import ast
import concurrent.futures
import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.cluster import Nginx, RedisServer
from tests.harness import Worker, s3_env
from tests.origin import MotoOrigin

MODES = ("proxy", "auto", "redirect")
SECRET = "clients-cluster-secret"
ORIGIN_ENV = {"AWS_ACCESS_KEY_ID": "origin-key", "AWS_SECRET_ACCESS_KEY": "origin-secret"}
WORKER_IDS = ("w0", "w1", "w2")
BLOCK = 1 << 20
ACCESS = re.compile(r"s3cache\.access (\S+) (\S+) (\S+) (.*) (\d{3}) (\d+) [\d.]+ms$", re.MULTILINE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "modes(*names): data paths (proxy, auto, redirect) a client test runs in")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cluster" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("modes")
        modes = marker.args if marker else ("proxy",)
        assert set(modes) <= set(MODES), modes
        metafunc.parametrize("cluster", modes, indirect=True, scope="session")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int, seed: str) -> bytes:
    """Bytes that differ per seed and per offset: a wrong object or a wrong offset shows as wrong content."""
    out = bytearray()
    counter = 0
    base = seed.encode()
    while len(out) < size:
        out += hashlib.sha512(base + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


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
                    "--cluster-secret", SECRET, "--worker-id", wid, "--data-path", self.mode]
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


@pytest.fixture(scope="session")
def clients_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoOrigin]:
    origin = MotoOrigin(tmp_path_factory.mktemp("clients-moto"))
    try:
        yield origin.start()
    finally:
        origin.stop()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, clients_origin: MotoOrigin,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    mode = request.param
    workdir = tmp_path_factory.mktemp(f"clients-{mode}")
    c = Cluster(mode, clients_origin, workdir, RedisServer(workdir))
    try:
        yield c.start()
    finally:
        c.stop()


def assert_redirected(cluster: Cluster, user: str, bucket: str, follower: bool = True, minimum: int = 1,
                      agent: str = "") -> list[Access]:
    """The client's reads met 307s exactly when its data path says so (redirect mode: always; auto: if it is a
    known follower; proxy: never), nginx passed those 307s to a client whose User-Agent contains agent, and
    reads of it were served (the redirected ones as the same user, carried by the token); returns the 307s."""
    mine = cluster.access(user, bucket)
    redirects = [a for a in mine if a.status == 307]
    assert all(a.operation in ("GetObject", "HeadObject") for a in redirects), redirects
    if cluster.mode == "redirect" or (cluster.mode == "auto" and follower):
        assert len(redirects) >= minimum, f"{user} was redirected {len(redirects)} times: the test proved nothing"
    else:
        assert redirects == [], f"{cluster.mode} mode redirected {user}"
    # the 307s went out through the load balancer to the client (nginx logs each with its status)
    assert cluster.nginx is not None
    sent = re.findall(rf'"(?:GET|HEAD) /{re.escape(bucket)}/\S* HTTP/1\.1" 307 \d+ "[^"]*" "[^"]*{re.escape(agent)}',
                      cluster.nginx.access_log())
    assert len(sent) >= len(redirects), f"workers logged {len(redirects)} redirects of {user}, nginx passed {len(sent)}"
    served = [a for a in mine if a.operation in ("GetObject", "HeadObject") and a.status in (200, 206)]
    assert len(served) >= len(redirects), f"{len(redirects)} redirects of {user}, {len(served)} reads served"
    return redirects


def client_env(cluster: Cluster, user: str, **extra: str) -> dict[str, str]:
    """The process environment with AWS variables for user at the cluster's endpoint, plus extra."""
    return {**cluster.env(user), **extra}
