"""Cluster-internal trust through real workers (one Redis, moto): a peer request is signed for itself only.

- A peer request captured on the wire (made by the peer client, cache.cluster.peers.Peers, against a listener
  standing in for a peer) carries no secret; replayed to a real worker it is served, replayed for another key,
  another block or another range it is 403 AccessDenied, and so is the same request once its signature expired.
- Rotation: a worker with the new secret (and the old one as previous) and a worker with the old one only read
  each other's blocks (both ways, over the peer hop) while the rotation is under way.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from cache.cluster.peers import EXPIRES_HEADER, PEER_PATH, SIGNATURE_HEADER, Peers
from cache.s3.model import ObjectMeta
from rig.origin import ORIGIN_ENV, MotoOrigin
from rig.processes import Worker, scrape
from rig.redis import RedisServer

pytestmark = pytest.mark.slow

MiB = 1 << 20
BLOCK = MiB


def s3(endpoint: str, user: str = "origin-key") -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=user, aws_secret_access_key="origin-secret",
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


@dataclass
class Seeded:
    bucket: str
    objects: dict[str, bytes]
    etags: dict[str, str]

    def meta(self, key: str) -> ObjectMeta:
        return ObjectMeta(key=key, size=len(self.objects[key]), etag=self.etags[key], last_modified=0.0)


@pytest.fixture(scope="module")
def seeded(moto_origin: MotoOrigin) -> Seeded:
    bucket = f"trust-{uuid.uuid4().hex[:10]}"
    client = s3(moto_origin.url)
    client.create_bucket(Bucket=bucket)
    objects = {"a.bin": secrets.token_bytes(3 * MiB + 17), "b.bin": secrets.token_bytes(3 * MiB + 17),
               "big.bin": secrets.token_bytes(16 * MiB)}
    etags = {key: client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
             for key, data in objects.items()}
    return Seeded(bucket, objects, etags)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("trust-redis")).start()
    yield server
    server.stop()


def start_worker(workdir: Path, moto: MotoOrigin, redis: RedisServer, wid: str, secret: str,
                 previous: str | None = None, namespace: str = "s3cache") -> Worker:
    wdir = workdir / wid
    wdir.mkdir()
    env = {**ORIGIN_ENV, "S3CACHE_CLUSTER_SECRET": secret, "S3CACHE_CLUSTER_NAMESPACE": namespace,
           "S3CACHE_CLUSTER_HEARTBEAT_TTL_S": "1.5"}
    if previous is not None:
        env["S3CACHE_CLUSTER_PREVIOUS_SECRET"] = previous
    args = ["--data", str(wdir / "data"), "--origin", moto.url, "--cache-dir", str(wdir / "blocks"),
            "--block-size", "1M", "--cache-capacity", "256M", "--redis", redis.url, "--worker-id", wid]
    return Worker(args, wdir, env=env, backend="s3").start()


def wait_membership(workers: list[Worker], want: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = [re.findall(r"live workers: (.*)$", w.log(), re.MULTILINE) for w in workers]
        if all(lines and lines[-1] == want for lines in last):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the workers did not all see {want}")


# ---- a listener standing in for a peer: what the peer client puts on the wire ------------------------------


@dataclass
class Captured:
    raw: bytes  # the request line and headers as sent
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class _Capture(http.server.BaseHTTPRequestHandler):
    captured: list[Captured]

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        raw = f"{self.requestline}\r\n".encode() + bytes(self.headers)
        self.captured.append(Captured(raw, split.path, dict(parse_qsl(split.query, keep_blank_values=True)),
                                      {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def capture(peers: Peers, seeded: Seeded, key: str, index: int, lo: int, hi: int) -> Captured:
    """The request the peer client sends for bytes [lo, hi) of block index of key, as a peer would receive it."""
    captured: list[Captured] = []
    handler: type[_Capture] = type("Capture", (_Capture,), {"captured": captured})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    async def ask() -> None:
        try:
            async for _ in peers.read_block(f"http://127.0.0.1:{server.server_port}", seeded.bucket,
                                            seeded.meta(key), index, lo, hi):
                pass
        finally:
            await peers.aclose()

    try:
        asyncio.run(ask())
    finally:
        server.shutdown()
        server.server_close()
    (request,) = captured
    return request


def replay(worker: Worker, request: Captured, **changes: object) -> httpx.Response:
    query = {**request.query, **{k: str(v) for k, v in changes.items()}}
    headers = {EXPIRES_HEADER: request.headers[EXPIRES_HEADER], SIGNATURE_HEADER: request.headers[SIGNATURE_HEADER]}
    return httpx.get(f"{worker.url}{request.path}?{urlencode(query)}", headers=headers, timeout=30)


def denied(response: httpx.Response) -> None:
    assert response.status_code == 403 and b"<Code>AccessDenied</Code>" in response.content, \
        (response.status_code, response.text[:300])


@pytest.fixture(scope="module")
def trusted(moto_origin: MotoOrigin, redis_server: RedisServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, str]]:
    secret = secrets.token_hex(16)
    worker = start_worker(tmp_path_factory.mktemp("trust"), moto_origin, redis_server, "solo", secret,
                          namespace=f"trust-{uuid.uuid4().hex[:6]}")
    yield worker, secret
    worker.stop()


def test_a_captured_peer_request_carries_no_secret_and_admits_only_itself(
        trusted: tuple[Worker, str], seeded: Seeded) -> None:
    worker, secret = trusted
    request = capture(Peers(secret, block_size=BLOCK), seeded, "a.bin", 1, 100, 4196)
    assert request.path == PEER_PATH
    assert secret.encode() not in request.raw and b"x-s3cache-secret" not in request.raw.lower()
    assert {EXPIRES_HEADER, SIGNATURE_HEADER} <= request.headers.keys()

    served = replay(worker, request)
    assert served.status_code == 200, served.text[:300]
    assert served.content == seeded.objects["a.bin"][BLOCK + 100:BLOCK + 4196]

    denied(replay(worker, request, k="b.bin", e=seeded.etags["b.bin"]))  # another key (one that exists)
    denied(replay(worker, request, lo=0))  # another range
    denied(replay(worker, request, hi=BLOCK))
    denied(replay(worker, request, lo=0, hi=BLOCK))
    denied(replay(worker, request, i=2))  # another block
    denied(replay(worker, request, b="other-bucket"))
    assert replay(worker, request).status_code == 200  # the request itself still is, until it expires

    unsigned = httpx.get(f"{worker.url}{request.path}?{urlencode(request.query)}", timeout=30)
    denied(unsigned)
    denied(httpx.get(f"{worker.url}{request.path}?{urlencode(request.query)}", headers={"x-s3cache-secret": secret},
                     timeout=30))  # the old protocol's raw secret admits nothing now


def test_a_captured_peer_request_is_refused_after_it_expires(trusted: tuple[Worker, str], seeded: Seeded) -> None:
    worker, secret = trusted
    request = capture(Peers(secret, block_size=BLOCK, signature_ttl_s=1.0), seeded, "a.bin", 0, 0, 1000)
    served = replay(worker, request)
    assert served.status_code == 200 and served.content == seeded.objects["a.bin"][:1000], served.text[:300]
    time.sleep(max(0.0, int(request.headers[EXPIRES_HEADER]) + 1.1 - time.time()))
    denied(replay(worker, request))
    # nor can its expiry be pushed on: the expiry is signed
    later = Captured(request.raw, request.path, request.query,
                     {**request.headers, EXPIRES_HEADER: str(int(time.time()) + 60)})
    denied(replay(worker, later))


def test_a_worker_rotated_and_one_not_yet_read_each_others_blocks(
        moto_origin: MotoOrigin, redis_server: RedisServer, seeded: Seeded, tmp_path: Path) -> None:
    old, new = secrets.token_hex(16), secrets.token_hex(16)
    namespace = f"rot-{uuid.uuid4().hex[:6]}"
    rotated = start_worker(tmp_path, moto_origin, redis_server, "rotated", new, previous=old, namespace=namespace)
    waiting = start_worker(tmp_path, moto_origin, redis_server, "waiting", old, namespace=namespace)
    try:
        wait_membership([rotated, waiting], "rotated, waiting")
        key, data = "big.bin", seeded.objects["big.bin"]
        before = {w.url: scrape(w.url)[("s3cache_peer_block_reads_total", ())] for w in (rotated, waiting)}
        for first in (rotated, waiting):  # each reads the blocks the other owns (and filled) from it
            got = s3(first.url, "reader").get_object(Bucket=seeded.bucket, Key=key)["Body"].read()
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
            time.sleep(0.3)  # the holders are published every 50 ms
        for w in (rotated, waiting):
            after = scrape(w.url)[("s3cache_peer_block_reads_total", ())]
            assert after > before[w.url], f"{w.url} read no block from the other worker"
        # the rotated worker accepted everything the other signed with the old secret
        assert "peer request refused" not in rotated.log()
        # the other refused the new secret (it does not know it yet), and the rotated worker asked again with the
        # old one: its reads were all served by the peer hop, none fell back to the origin
        assert "peer request refused" in waiting.log()
        assert "Traceback" not in rotated.log() + waiting.log()
        assert not re.search(r"(?i)peer .*(unavailable|skipp)", rotated.log()), rotated.log()[-2000:]
    finally:
        rotated.stop()
        waiting.stop()
