"""Peers that fail a proxied read: three real workers over one Redis and moto, read through w0 directly.

- a peer that answers slowly (w1 is reached through a relay sending 1 MB/s): each of its block reads is given
  up once ``cluster.peer_timeout_s`` has passed and the rest comes from the next holder, the owner or the origin;
- a peer that accepts connections and never answers (w2 stopped with SIGSTOP): the same bound;
- a peer killed with SIGKILL while reads through it are in flight: each of those reads is whole or a short body of
  the right bytes, the next read is whole, and the peer restarted on its cache directory serves no block it had
  half written.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cache.cluster.placement import owner, placement_id
from rig.origin import ORIGIN_ENV, CountingProxy, MotoOrigin
from rig.processes import Worker, free_port
from rig.redis import RedisServer
from tests.conftest import make_client
from tests.faults.conftest import seed

pytestmark = pytest.mark.slow

MiB = 1 << 20
BLOCK = 4 * MiB
PEER_TIMEOUT_S = 2.0
IDS = ("w0", "w1", "w2")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Peers:
    moto: MotoOrigin
    redis: RedisServer
    workers: dict[str, Worker]
    slow: CountingProxy  # in front of w1: what its peers reach it through

    def seed(self, size: int, busy: str) -> tuple[str, bytes]:
        """A new bucket at the origin with one object "k" of size random bytes, two or more of whose blocks
        worker busy owns (bucket names are drawn until one does)."""
        bucket = f"p-{uuid.uuid4().hex[:12]}"
        while len(self.owned_by(bucket, size, busy)) < 2:
            bucket = f"p-{uuid.uuid4().hex[:12]}"
        data = os.urandom(size)
        return seed(self.moto, {"k": data}, bucket), data

    def owned_by(self, bucket: str, size: int, wid: str) -> list[int]:
        return [i for i in range((size + BLOCK - 1) // BLOCK) if owner(placement_id(bucket, "k", i), IDS) == wid]

    def read(self, wid: str, bucket: str) -> bytes:
        return bytes(make_client(self.workers[wid].url).get_object(Bucket=bucket, Key="k")["Body"].read())


@pytest.fixture(scope="module")
def peers(moto_origin: MotoOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    workdir = tmp_path_factory.mktemp("faults-peers")
    redis = RedisServer(workdir).start()
    ports = {wid: free_port() for wid in IDS}
    slow = CountingProxy(ports["w1"], rate_bytes_s=MiB).start()
    workers: dict[str, Worker] = {}
    try:
        for wid in IDS:
            (workdir / wid).mkdir()
            args = ["--data", str(workdir / wid / "data"), "--origin", moto_origin.url,
                    "--cache-dir", str(workdir / wid / "blocks"), "--cache-capacity", "256M", "--block-size", "4M",
                    "--redis", redis.url, "--worker-id", wid]
            if wid == "w1":
                args += ["--advertise-url", slow.url]
            env = {**ORIGIN_ENV, "S3CACHE_CLUSTER_SECRET": "peers-secret", "S3CACHE_CLUSTER_HEARTBEAT_TTL_S": "30",
                   "S3CACHE_CLUSTER_PEER_TIMEOUT_S": str(PEER_TIMEOUT_S), "S3CACHE_CACHE_METADATA_TTL_S": "600"}
            workers[wid] = Worker(args, workdir / wid, env=env, backend="s3", port=ports[wid])
        for w in workers.values():
            w.start()
        rig = Peers(moto_origin, redis, workers, slow)
        _wait_membership(workers)
        yield rig
    finally:
        for w in workers.values():
            if w.proc is not None:
                w.proc.send_signal(signal.SIGCONT)
            w.stop()
        slow.stop()
        redis.stop()


def _wait_membership(workers: dict[str, Worker], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = [[line for line in w.log().splitlines() if "live workers: " in line] for w in workers.values()]
        if all(lines and lines[-1].endswith("live workers: w0, w1, w2") for lines in last):
            return
        time.sleep(0.1)
    raise TimeoutError("the workers did not all see each other")


def test_a_slow_peer_is_given_up_after_the_peer_timeout(peers: Peers) -> None:
    size = 6 * BLOCK
    bucket, data = peers.seed(size, "w1")
    slow_blocks = peers.owned_by(bucket, size, "w1")
    began = time.monotonic()
    body = peers.read("w0", bucket)  # cold: w1's blocks are filled by w1, and read from it at 1 MB/s
    took = time.monotonic() - began
    assert md5(body) == md5(data)
    # a 4 MiB block at 1 MB/s takes 4 s: each is given up at the timeout, and w1 is then passed over (the bound is
    # loose for a loaded host; the line below is what tells a read given up from one waited out)
    assert took < len(slow_blocks) * (PEER_TIMEOUT_S + 2) + 15, (took, slow_blocks)
    assert "peer w1 skipped for block" in peers.workers["w0"].log() and \
        f"not done in {PEER_TIMEOUT_S}s" in peers.workers["w0"].log(), peers.workers["w0"].log()[-3000:]
    assert md5(peers.read("w0", bucket)) == md5(data)  # and again, warm


def test_a_peer_that_never_answers_is_given_up_after_the_peer_timeout(peers: Peers) -> None:
    size = 6 * BLOCK
    bucket, data = peers.seed(size, "w2")
    assert md5(peers.read("w2", bucket)) == md5(data)  # warm: w2 holds its own blocks
    hung = peers.workers["w2"]
    assert hung.proc is not None
    hung.proc.send_signal(signal.SIGSTOP)  # its port still accepts connections; nothing answers
    try:
        began = time.monotonic()
        body = peers.read("w0", bucket)
        took = time.monotonic() - began
    finally:
        hung.proc.send_signal(signal.SIGCONT)
    assert md5(body) == md5(data)
    assert took < 2 * (PEER_TIMEOUT_S + 2) + 10, took  # one timeout, then w2 is suspected and passed over
    assert "peer w2 skipped" in peers.workers["w0"].log()


def _read_raw(url_port: int, bucket: str) -> tuple[int, bytes]:
    """(Content-Length, bytes received) of a GET read until the worker ends or cuts it."""
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=60)
    conn.request("GET", f"/{bucket}/k", headers={"Authorization": "AWS tester:x"})
    response = conn.getresponse()
    length = int(response.getheader("content-length") or 0)
    received = bytearray()
    try:
        while chunk := response.read(256 << 10):
            received += chunk
            time.sleep(0.05)  # a reader slower than the cluster: its reads are in flight when the peer dies
    except (http.client.IncompleteRead, ConnectionError) as short:
        received += getattr(short, "partial", b"")
    conn.close()
    return length, bytes(received)


def test_a_peer_killed_under_reads_costs_short_bodies_at_most_and_serves_no_half_block(
        peers: Peers, tmp_path: Path) -> None:
    size = 8 * BLOCK
    bucket, data = peers.seed(size, "w2")
    assert md5(peers.read("w2", bucket)) == md5(data)  # every block of w2's own is held by w2
    w0 = peers.workers["w0"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        reads = [pool.submit(_read_raw, w0.port, bucket) for _ in range(4)]
        time.sleep(0.5)
        victim = peers.workers["w2"]
        victim.stop(signal.SIGKILL)
        results = [read.result() for read in reads]
    for length, received in results:
        assert length == size and received == data[:len(received)]  # whole, or a short body of the right bytes
    began = time.monotonic()
    assert md5(peers.read("w0", bucket)) == md5(data)
    assert time.monotonic() - began < 3 * (PEER_TIMEOUT_S + 2) + 10
    victim.start()  # on its cache directory: blocks written whole survive, a half-written one is never served
    _wait_membership(peers.workers)
    assert md5(peers.read("w2", bucket)) == md5(data)
