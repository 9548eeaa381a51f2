"""Three real workers, one Redis, one moto origin (seen through a counting proxy), nginx running the shipped
config: issue 4's acceptance, end to end.

- proxy mode: a cold object read by 32 clients through nginx reaches the origin once per block; warm reads
  through every worker touch no origin; boto3 reads right through every worker; writes are visible on every
  worker at once; peers need the secret; a capacity-0 gateway serves without holding blocks; a restarted
  Redis is rejoined; a worker killed with SIGKILL costs nothing but refetches of its own blocks.
- fan-in: 64 cold readers of one object through nginx, the origin 20 ms away: one origin request per block.
- redirect mode: curl, httpx and s3fs follow a 307 to the holder; tokens cannot be tampered with; writes and
  bucket calls are never redirected.
- auto mode: boto3 is proxied, never redirected; s3fs (aiobotocore) is redirected.
- Redis unreachable from the start: workers serve from the origin and say why.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import httpx
import pytest
import s3fs
from botocore.config import Config

from cache.blocks.reader import block_id
from cache.cluster.peers import PEER_PATH, sign_request
from cache.cluster.placement import owner, placement_id
from rig.nginx import Nginx
from rig.origin import CountingProxy, MotoOrigin
from rig.processes import Worker, free_port, scrape, wait_http
from rig.redis import RedisServer

pytestmark = pytest.mark.slow

MiB = 1 << 20
BLOCK = MiB
SECRET = "cluster-test-secret"
ORIGIN_CREDS = {"AWS_ACCESS_KEY_ID": "origin-key", "AWS_SECRET_ACCESS_KEY": "origin-secret"}
WORKER_ENV = {**ORIGIN_CREDS, "S3CACHE_CLUSTER_HEARTBEAT_TTL_S": "1.5"}
IDS = ["w0", "w1", "w2"]
ACCESS = re.compile(r"s3cache\.access (\S+) (\S+) (\S+) (.*) (\d{3}) (\d+) [\d.]+ms \S+ \S+ \S+$", re.MULTILINE)


def s3_client(endpoint: str, user: str = "tester"):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=user, aws_secret_access_key="secret",
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- the origin: moto behind a counting proxy, shared by the whole module ------------------------


@dataclass
class Origin:
    moto: MotoOrigin
    counting: CountingProxy

    @property
    def url(self) -> str:
        return self.counting.url

    def seed(self, bucket: str, objects: dict[str, bytes]) -> dict[str, str]:
        """Create bucket and objects straight at moto (not counted); returns key -> ETag (unquoted)."""
        s3 = s3_client(self.moto.url, "origin-key")
        s3.create_bucket(Bucket=bucket)
        etags = {}
        for key, data in objects.items():
            etags[key] = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
        return etags


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    moto = MotoOrigin(tmp_path_factory.mktemp("cluster-moto"))
    counting = CountingProxy(0)
    try:
        moto.start()
        counting.upstream_port = moto.port
        counting.start()
        yield Origin(moto, counting)
    finally:
        counting.stop()
        moto.stop()


# ---- a cluster: Redis, three workers, optionally nginx -------------------------------------------


@dataclass
class Rig:
    origin: Origin
    redis: RedisServer
    workdir: Path
    mode: str
    bucket: str
    objects: dict[str, bytes]
    etags: dict[str, str]
    workers: dict[str, Worker] = field(default_factory=dict)
    nginx: Nginx | None = None
    worker_env: dict[str, str] = field(default_factory=lambda: dict(WORKER_ENV))
    placed: dict[str, str] = field(default_factory=dict)  # block id -> what it is placed by

    @property
    def counting(self) -> CountingProxy:
        return self.origin.counting

    def worker(self, worker_id: str, *extra: str, redis_url: str | None = None) -> Worker:
        """A worker of this cluster (not started)."""
        workdir = self.workdir / worker_id
        workdir.mkdir(exist_ok=True)
        args = ["--data", str(workdir / "data"), "--origin", self.origin.url, "--cache-dir", str(workdir / "blocks"),
                "--block-size", "1M", "--cache-capacity", "256M", "--redis", redis_url or self.redis.url,
                "--cluster-secret", SECRET, "--worker-id", worker_id, "--data-path", self.mode, *extra]
        return Worker(args, workdir, env=dict(self.worker_env))

    def url(self, worker_id: str) -> str:
        return self.workers[worker_id].url

    def object_url(self, worker_id: str, key: str) -> str:
        return f"{self.url(worker_id)}/{self.bucket}/{key}"

    def blocks(self, key: str) -> list[str]:
        size = len(self.objects[key])
        ids = [block_id(self.bucket, key, self.etags[key], i, BLOCK) for i in range(-(-size // BLOCK))]
        for i, bid in enumerate(ids):  # placed by name and index: the owner is known before the version is
            self.placed[bid] = placement_id(self.bucket, key, i)
        return ids

    def owner(self, bid: str) -> str:
        return owner(self.placed[bid], IDS) or ""

    def span(self, key: str, index: int) -> str:
        return f"bytes={index * BLOCK}-{min((index + 1) * BLOCK, len(self.objects[key])) - 1}"

    def on_disk(self, worker_id: str) -> set[str]:
        directory = self.workdir / worker_id / "blocks"
        return {p.name for p in directory.glob("??/*") if len(p.name) == 64}

    def holders(self, bid: str) -> set[str]:
        return set(self.redis.client().smembers(f"s3cache:blk:{bid}"))  # type: ignore[arg-type]

    def registered(self) -> list[str]:
        return sorted(self.redis.client().zrange("s3cache:workers", 0, -1))  # type: ignore[arg-type]

    def wait_membership(self, ids: list[str], timeout_s: float = 15.0) -> None:
        """Until every running worker's own snapshot of the live set is exactly ids (from its log)."""
        want = ", ".join(sorted(ids))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = {}
            for wid, w in self.workers.items():
                if w.proc is None:
                    continue
                lines = re.findall(r"live workers: (.*)$", w.log(), re.MULTILINE)
                seen[wid] = lines[-1] if lines else ""
            if all(v == want for v in seen.values()):
                return
            time.sleep(0.1)
        raise TimeoutError(f"membership did not settle on {want}: {seen}")

    def wait_published(self, key: str, timeout_s: float = 5.0) -> dict[str, set[str]]:
        """Until every block of key has a holder in the placement map; block id -> holders."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = {bid: self.holders(bid) for bid in self.blocks(key)}
            if all(found.values()) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def access(self, worker_id: str) -> list[tuple[str, str, str, str, int]]:
        """(user, operation, bucket, key, status) of every access-log line of a worker."""
        return [(u, op, b, k, int(s)) for u, op, b, k, s, _ in ACCESS.findall(self.workers[worker_id].log())]

    def diagnostics(self) -> str:
        """The workers' warnings, errors and membership changes: what to read when an assertion fails."""
        lines = []
        for wid, w in self.workers.items():
            lines += [f"{wid}: {line}" for line in w.log().splitlines()
                      if " WARNING " in line or " ERROR " in line or "live workers" in line or "Redis at" in line]
        return "\n".join(lines[-60:])

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for w in self.workers.values():
            w.stop()
        self.redis.stop()


def start_all(workers: list[Worker]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        for future in [pool.submit(w.start) for w in workers]:
            future.result()


def make_rig(tmp_path_factory: pytest.TempPathFactory, origin: Origin, mode: str, objects: dict[str, bytes],
             with_nginx: bool = False, worker_env: dict[str, str] = WORKER_ENV) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp(f"cluster-{mode}")
    bucket = f"c-{mode}-{uuid.uuid4().hex[:8]}"
    etags = origin.seed(bucket, objects)
    rig = Rig(origin, RedisServer(workdir), workdir, mode, bucket, objects, etags, worker_env=dict(worker_env))
    try:
        rig.redis.start()
        rig.workers = {wid: rig.worker(wid) for wid in IDS}
        start_all(list(rig.workers.values()))
        rig.wait_membership(IDS)
        if with_nginx:
            rig.nginx = Nginx([f"127.0.0.1:{w.port}" for w in rig.workers.values()]).start()
        yield rig
    finally:
        rig.stop()


def read_at_once(url: str, readers: int) -> list[str]:
    """GET url with that many clients at once (each its own connection, released together): each body's digest."""
    barrier = threading.Barrier(readers)

    def client(_: int) -> str:
        with httpx.Client(timeout=120) as http:
            barrier.wait()
            r = http.get(url)
        assert r.status_code == 200, r.text[:300]
        return digest(r.content)

    with concurrent.futures.ThreadPoolExecutor(readers) as pool:
        return list(pool.map(client, range(readers)))


def read_all(rig: Rig, worker_id: str, key: str) -> None:
    r = httpx.get(rig.object_url(worker_id, key), timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert digest(r.content) == digest(rig.objects[key]), f"{key} through {worker_id}"


# =================================================================================================
# proxy mode, behind nginx
# =================================================================================================

PROXY_OBJECTS = {
    "cold-12m": os.urandom(12 * MiB),
    "odd": os.urandom(5 * MiB + 12345),
    "small": os.urandom(1000),
    **{f"tiny/{n}": os.urandom(2000 + n) for n in range(9)},
}


@pytest.fixture(scope="class")
def proxy_rig(tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> Iterator[Rig]:
    yield from make_rig(tmp_path_factory, origin, "proxy", PROXY_OBJECTS, with_nginx=True)


class TestProxyMode:
    def test_cold_object_through_nginx_reaches_origin_once_per_block(self, proxy_rig: Rig) -> None:
        rig, key = proxy_rig, "cold-12m"
        assert rig.nginx is not None
        url = f"{rig.nginx.url}/{rig.bucket}/{key}"
        rig.counting.reset()
        assert read_at_once(url, 32) == [digest(rig.objects[key])] * 32
        time.sleep(0.3)  # a late duplicate fetch would show up here
        gets = rig.counting.object_gets(f"/{rig.bucket}/{key}")
        # A GET without a range is the cold read of the whole object, cut after block 0.
        assert sorted(g.range or rig.span(key, 0) for g in gets) == sorted(rig.span(key, i) for i in range(12)), \
            f"{len(gets)} origin GETs for 12 blocks\n{rig.diagnostics()}"
        # nginx spread the clients over all three workers, and each block went to its HRW owner alone
        served = {wid for wid in IDS if any(a[1] == "GetObject" and a[3] == f"'{key}'" for a in rig.access(wid))}
        assert served == set(IDS)
        holders = rig.wait_published(key)
        assert all(len(h) == 1 for h in holders.values()), holders
        owners = {rig.owner(bid) for bid in rig.blocks(key)}
        assert len(owners) > 1, "every block has one owner: the object cannot show the spread"
        assert {wid for h in holders.values() for wid in h} == owners
        for bid, h in holders.items():
            assert h == {rig.owner(bid)}
            assert bid in rig.on_disk(next(iter(h)))

    def test_a_cold_small_object_is_one_origin_request_through_any_worker(self, proxy_rig: Rig) -> None:
        """The worker a client reaches asks the owner of block 0 (known from the key alone) to open the object; the
        owner makes the one origin request, a GET whose answer brings the metadata with the bytes."""
        rig = proxy_rig
        keys = [f"tiny/{n}" for n in range(9)]

        def peer_block_reads() -> float:
            return sum(scrape(rig.url(wid)).get(("s3cache_peer_block_reads_total", ()), 0.0) for wid in IDS)

        rig.counting.reset()
        before = peer_block_reads()
        for n, key in enumerate(keys):
            read_all(rig, IDS[n % 3], key)  # each worker receives three of them, owned wherever HRW says
        seen = [(s.method, s.path) for s in rig.counting.requests()]
        assert sorted(seen) == sorted(("GET", f"/{rig.bucket}/{key}") for key in keys)
        owners = {rig.owner(rig.blocks(key)[0]) for key in keys}
        assert len(owners) > 1, "the keys must be owned by more than one worker to show the routing"
        assert any(rig.owner(rig.blocks(key)[0]) != IDS[n % 3] for n, key in enumerate(keys))
        # through a non-owner the bytes came with the owner's answer to the cold open: no second peer request
        assert peer_block_reads() == before
        for key in keys:
            assert rig.wait_published(key) == {rig.blocks(key)[0]: {rig.owner(rig.blocks(key)[0])}}
        rig.counting.reset()
        for n, key in enumerate(keys):
            read_all(rig, IDS[(n + 1) % 3], key)
        assert rig.counting.requests() == [], "warm through another worker: no origin request at all"
        assert peer_block_reads() > before, "warm through a non-holder: a peer block read"

    def test_warm_reads_through_every_worker_touch_no_origin(self, proxy_rig: Rig) -> None:
        rig, key = proxy_rig, "cold-12m"
        read_all(rig, "w0", key)  # warm (already warm when the test above ran)
        rig.wait_published(key)
        rig.counting.reset()
        for wid in IDS:
            read_all(rig, wid, key)
            r = httpx.get(rig.object_url(wid, key), headers={"range": "bytes=3000000-9000000"}, timeout=30)
            assert r.status_code == 206 and r.content == rig.objects[key][3000000:9000001]
        assert rig.counting.object_gets() == []
        assert rig.counting.requests() == [], "a warm read needs no origin round trip, metadata included"

    def test_boto3_reads_every_byte_through_every_worker(self, proxy_rig: Rig) -> None:
        rig = proxy_rig
        ranges = [(0, 0), (BLOCK - 10, BLOCK + 9), (1_500_000, 4_900_000), (2 * BLOCK, 3 * BLOCK - 1),
                  (len(rig.objects["odd"]) - 20_000, len(rig.objects["odd"]) - 1)]
        owners = [rig.owner(bid) for bid in rig.blocks("odd")]
        border = next((i for i in range(len(owners) - 1) if owners[i] != owners[i + 1]), None)
        if border is not None:  # a range over the border of two blocks that live on different workers
            ranges.append((border * BLOCK + BLOCK // 2, (border + 1) * BLOCK + BLOCK // 2))
        for round_ in range(2):  # cold (ranged reads first, on different workers), then warm
            for n, (lo, hi) in enumerate(ranges):
                s3 = s3_client(rig.url(IDS[(n + round_) % 3]))
                body = s3.get_object(Bucket=rig.bucket, Key="odd", Range=f"bytes={lo}-{hi}")["Body"].read()
                assert body == rig.objects["odd"][lo:hi + 1], (round_, lo, hi)
        for wid in IDS:
            s3 = s3_client(rig.url(wid))
            for key, data in rig.objects.items():
                assert digest(s3.get_object(Bucket=rig.bucket, Key=key)["Body"].read()) == digest(data)
                head = s3.head_object(Bucket=rig.bucket, Key=key)
                assert head["ContentLength"] == len(data) and head["ETag"] == f'"{rig.etags[key]}"'
            body = s3.get_object(Bucket=rig.bucket, Key="odd", Range="bytes=-100")["Body"].read()
            assert body == rig.objects["odd"][-100:]
        # the whole-object reads spanned every worker's blocks, the border range two workers' blocks
        holders = rig.wait_published("odd")
        assert {wid for h in holders.values() for wid in h} == set(owners)
        if border is not None:
            assert holders[rig.blocks("odd")[border]] != holders[rig.blocks("odd")[border + 1]]

    def test_write_is_visible_through_every_other_worker_at_once(self, proxy_rig: Rig) -> None:
        rig = proxy_rig
        clients = {wid: s3_client(rig.url(wid)) for wid in IDS}
        key = "rw/object.bin"
        size = BLOCK + 4321
        for n in range(6):
            writer = IDS[n % 3]
            data = os.urandom(size)  # same size each time: only the content tells versions apart
            clients[writer].put_object(Bucket=rig.bucket, Key=key, Body=data)
            for wid in IDS:
                got = clients[wid].get_object(Bucket=rig.bucket, Key=key)["Body"].read()
                assert digest(got) == digest(data), f"version {n} written via {writer}, read via {wid}"
                head = clients[wid].head_object(Bucket=rig.bucket, Key=key)
                assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        clients["w0"].delete_object(Bucket=rig.bucket, Key=key)
        for wid in ("w1", "w2"):
            r = httpx.get(rig.object_url(wid, key), timeout=10)
            assert r.status_code == 404 and b"NoSuchKey" in r.content, wid
            assert httpx.head(rig.object_url(wid, key), timeout=10).status_code == 404

    def test_members_mounting_the_bucket_under_another_name_share_metadata_and_writes(self, proxy_rig: Rig) -> None:
        """A worker that mounts rig.bucket/mnt/ as bucket "lab" (a sidecar's input, say) and the others share
        the object's metadata and hear of each other's writes: both go by the origin's names."""
        rig = proxy_rig
        mounted = rig.worker("mnt", "--mount", f"lab=s3://{rig.bucket}/mnt/")
        rig.workers["mnt"] = mounted
        try:
            mounted.start()
            lab, plain = s3_client(mounted.url), s3_client(rig.url("w1"))
            versions = [os.urandom(BLOCK + 10) for _ in range(3)]
            etags = [hashlib.md5(v).hexdigest() for v in versions]
            s3_client(rig.url("w0")).put_object(Bucket=rig.bucket, Key="mnt/x", Body=versions[0])
            rig.counting.reset()
            assert lab.get_object(Bucket="lab", Key="x")["Body"].read() == versions[0]
            assert plain.head_object(Bucket=rig.bucket, Key="mnt/x")["ETag"] == f'"{etags[0]}"'
            heads = [r for r in rig.counting.requests() if r.method == "HEAD" and r.path.endswith("/mnt/x")]
            # No HEAD at all: the cold GET's answer brought the metadata, and the second name found it shared.
            assert heads == [], "the second name found the metadata the first one shared"
            plain.put_object(Bucket=rig.bucket, Key="mnt/x", Body=versions[1])  # a write under the origin's name
            got = lab.get_object(Bucket="lab", Key="x")
            assert got["ETag"] == f'"{etags[1]}"' and got["Body"].read() == versions[1]
            lab.put_object(Bucket="lab", Key="x", Body=versions[2])  # and one under the mount's name
            for wid in IDS:
                got = s3_client(rig.url(wid)).get_object(Bucket=rig.bucket, Key="mnt/x")
                assert got["ETag"] == f'"{etags[2]}"' and got["Body"].read() == versions[2], wid
            lab.delete_object(Bucket="lab", Key="x")
            for wid in IDS:
                r = httpx.get(rig.object_url(wid, "mnt/x"), timeout=10)
                assert r.status_code == 404 and b"NoSuchKey" in r.content, wid
        finally:
            mounted.stop()
            del rig.workers["mnt"]
            rig.wait_membership(IDS)  # the next test finds the three workers it expects

    def test_prometheus_metrics_show_the_cluster(self, proxy_rig: Rig) -> None:
        rig, key = proxy_rig, "odd"
        rig.wait_membership(IDS)
        read_all(rig, "w0", key)
        held = rig.wait_published(key)
        asker = min(IDS, key=lambda wid: sum(wid in h for h in held.values()))  # holds at most 2 of the 6 blocks
        before = scrape(rig.url(asker))
        read_all(rig, asker, key)
        s3_client(rig.url(asker)).put_object(Bucket=rig.bucket, Key="metrics/x", Body=b"x")
        after = scrape(rig.url(asker))
        assert after[("s3cache_cluster_workers", ())] == 3 and after[("s3cache_redis_up", ())] == 1
        assert after[("s3cache_peer_block_reads_total", ())] > before[("s3cache_peer_block_reads_total", ())], \
            "the other workers' blocks came over the peer hop"
        assert after[("s3cache_invalidations_total", ())] == before[("s3cache_invalidations_total", ())] + 1
        assert after[("s3cache_invalidations_unacknowledged_total", ())] == 0

    def test_peer_requests_need_the_cluster_secret(self, proxy_rig: Rig) -> None:
        rig, key = proxy_rig, "small"
        params = {"b": rig.bucket, "k": key, "e": rig.etags[key], "s": len(rig.objects[key]), "i": 0, "lo": 0,
                  "hi": 100}
        signed = sign_request(SECRET, "GET", PEER_PATH, params, 30)
        for wid in IDS:
            url = f"{rig.url(wid)}{PEER_PATH}?{urlencode(params)}"
            for headers in ({}, {"x-s3cache-secret": SECRET}, sign_request("wrong", "GET", PEER_PATH, params, 30),
                            {**signed, "x-s3cache-signature": ""}):
                r = httpx.get(url, headers=headers, timeout=10)
                assert r.status_code == 403 and b"AccessDenied" in r.content, (wid, headers, r.text)
            r = httpx.get(url, headers=signed, timeout=10)
            assert r.status_code == 200 and r.content == rig.objects[key][:100]

    def test_capacity_zero_worker_is_a_pure_gateway(self, proxy_rig: Rig) -> None:
        rig = proxy_rig
        gateway = rig.worker("gw", "--cache-capacity", "0")
        rig.workers["gw"] = gateway
        try:
            gateway.start()
            rig.wait_membership(IDS)  # the gateway sees the three workers, and nobody sees the gateway
            assert rig.registered() == IDS
            read_all(rig, "w1", "cold-12m")
            rig.wait_published("cold-12m")
            rig.counting.reset()
            read_all(rig, "gw", "cold-12m")  # warm in the cluster: the gateway reads it from the workers
            assert rig.counting.object_gets() == []
            key = "gateway/cold.bin"
            data = os.urandom(3 * MiB + 5)
            s3_client(gateway.url).put_object(Bucket=rig.bucket, Key=key, Body=data)
            rig.objects[key] = data
            rig.etags[key] = hashlib.md5(data).hexdigest()
            rig.counting.reset()
            read_all(rig, "gw", key)  # cold: fetched by the blocks' owners, once each
            r = httpx.get(rig.object_url("gw", key), headers={"range": "bytes=1000-2500000"}, timeout=30)
            assert r.status_code == 206 and r.content == data[1000:2500001]
            assert len(rig.counting.object_gets(f"/{rig.bucket}/{key}")) == 4
            holders = rig.wait_published(key)
            assert all(h and h <= set(IDS) for h in holders.values()), holders
            assert rig.on_disk("gw") == set()
            assert "gw" not in rig.registered()
            blk_keys = list(rig.redis.client().scan_iter("s3cache:blk:*"))
            assert not any("gw" in rig.redis.client().smembers(k) for k in blk_keys)  # type: ignore[operator]
        finally:
            gateway.stop()
            del rig.workers["gw"]

    def test_restarted_redis_is_rejoined_and_reads_stay_correct(self, proxy_rig: Rig) -> None:
        rig = proxy_rig
        keys = ["cold-12m", "odd", "small"]
        for key in keys:
            read_all(rig, "w0", key)
        errors: list[str] = []
        reads = 0
        stop = threading.Event()

        def reader() -> None:
            nonlocal reads
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    wid, key = random.choice(IDS), random.choice(keys)
                    try:
                        r = http.get(rig.object_url(wid, key))
                        if r.status_code != 200 or digest(r.content) != digest(rig.objects[key]):
                            errors.append(f"{key} via {wid}: {r.status_code} {r.content[:200]!r}")
                    except httpx.HTTPError as exc:
                        errors.append(f"{key} via {wid}: {exc!r}")
                    reads += 1

        before = {wid: len(rig.workers[wid].log()) for wid in IDS}
        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            rig.redis.restart()
            restarted = time.monotonic()
            while rig.registered() != IDS:
                assert time.monotonic() - restarted < 5, f"rejoined so far: {rig.registered()}"
                time.sleep(0.05)
            rejoined_s = time.monotonic() - restarted
            # each worker republishes the blocks it holds
            deadline = time.monotonic() + 5
            while not all(rig.wait_published(key, 0).values() for key in keys):
                assert time.monotonic() < deadline, "placement map not republished"
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert errors == []
        assert reads > 10
        for wid in IDS:  # each worker noticed, rejoined, and did not flap on its stale pooled connections
            since = rig.workers[wid].log()[before[wid]:]
            assert "reachable: joined as" in since and since.count(" unreachable (") <= 1, since
        print(f"rejoined in {rejoined_s:.2f}s; {reads} reads during the restart")

    def test_worker_killed_with_sigkill_costs_only_its_own_blocks(self, proxy_rig: Rig) -> None:
        rig = proxy_rig
        for key in rig.objects:
            read_all(rig, "w0", key)
        held = {key: rig.wait_published(key) for key in rig.objects}

        def sole(wid: str) -> set[tuple[str, int]]:
            """The blocks only wid holds."""
            return {(key, i) for key in rig.objects for i, bid in enumerate(rig.blocks(key)) if held[key][bid] == {wid}}

        victim = max(IDS, key=lambda wid: len(sole(wid)))  # HRW over random ETags: whoever holds the most
        lost = sole(victim)
        assert lost, f"{victim} held nothing: nothing to prove"
        rig.counting.reset()
        rig.workers[victim].stop(signal.SIGKILL)
        for wid in [w for w in IDS if w != victim]:
            s3 = s3_client(rig.url(wid))
            for key, data in rig.objects.items():
                assert digest(s3.get_object(Bucket=rig.bucket, Key=key)["Body"].read()) == digest(data), (wid, key)
                lo, hi = len(data) // 7, len(data) * 5 // 7
                r = httpx.get(rig.object_url(wid, key), headers={"range": f"bytes={lo}-{hi}"}, timeout=30)
                assert r.status_code == 206 and r.content == data[lo:hi + 1], (wid, key)
        fetched = [(g.path.split("/", 2)[2], g.range) for g in rig.counting.object_gets()]
        expected = sorted((key, rig.span(key, i)) for key, i in lost)
        assert sorted(fetched) == expected, f"only the dead worker's blocks are refetched, once each\n{rig.diagnostics()}"
        assert rig.nginx is not None
        for key, data in rig.objects.items():
            for _ in range(3):  # round robin reaches the dead upstream: nginx moves on to the next
                r = httpx.get(f"{rig.nginx.url}/{rig.bucket}/{key}", timeout=30)
                assert r.status_code == 200 and digest(r.content) == digest(data)


# =================================================================================================
# fan-in: many cold readers of one object at once
# =================================================================================================


@pytest.fixture(scope="class")
def fanin_rig(tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> Iterator[Rig]:
    """The default heartbeat TTL: 64 streams on two shared cores may delay a worker's heartbeat past the short one
    the membership tests use, and a worker taken for gone has its blocks fetched by the others, as it must."""
    yield from make_rig(tmp_path_factory, origin, "proxy", {"fanin": os.urandom(24 * MiB + 4321)}, with_nginx=True,
                        worker_env=ORIGIN_CREDS)


class TestFanIn:
    def test_64_cold_readers_of_a_remote_origin_cost_one_origin_request_per_block(self, fanin_rig: Rig) -> None:
        """64 readers at once through nginx, an origin 20 ms away: every reader's read-ahead walks the same blocks,
        and each worker hints a block's owner once, so no owner is swamped into peer timeouts that would send
        the blocks to the origin a second time."""
        rig, key = fanin_rig, "fanin"
        assert rig.nginx is not None
        url, readers = f"{rig.nginx.url}/{rig.bucket}/{key}", 64
        skipped_before = sum(w.log().count(" skipped for ") for w in rig.workers.values())
        rig.counting.reset()
        rig.counting.latency_s = 0.02
        try:
            digests = read_at_once(url, readers)
        finally:
            rig.counting.latency_s = 0.0
        assert digests == [digest(rig.objects[key])] * readers
        time.sleep(0.3)  # a late duplicate fetch would show up here
        spans = [rig.span(key, i) for i in range(len(rig.blocks(key)))]
        gets = rig.counting.object_gets(f"/{rig.bucket}/{key}")
        # the whole-object cold read (no Range) is cut after block 0
        assert sorted(g.range or spans[0] for g in gets) == sorted(spans), \
            f"{len(gets)} origin GETs for {len(spans)} blocks\n{rig.diagnostics()}"
        assert sum(w.log().count(" skipped for ") for w in rig.workers.values()) == skipped_before, rig.diagnostics()


# =================================================================================================
# redirect mode
# =================================================================================================

REDIRECT_OBJECTS = {
    "obj": os.urandom(4 * MiB + 100),
    "s3fs.bin": os.urandom(3 * MiB + 7),
    "dir/with space+plus.txt": os.urandom(2000),
}


@pytest.fixture(scope="class")
def redirect_rig(tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> Iterator[Rig]:
    yield from make_rig(tmp_path_factory, origin, "redirect", REDIRECT_OBJECTS)


def owner_of(rig: Rig, key: str, index: int = 0) -> str:
    return rig.owner(rig.blocks(key)[index])


def not_holding(rig: Rig, key: str, index: int = 0) -> str:
    """A worker that neither holds nor owns block index of key."""
    bid = rig.blocks(key)[index]
    busy = rig.holders(bid) | {rig.owner(bid)}
    return next(wid for wid in IDS if wid not in busy)


def port_of(url: str) -> int:
    return urlsplit(url).port or 0


class TestRedirectMode:
    def test_307_points_at_the_worker_holding_the_block(self, redirect_rig: Rig) -> None:
        rig, key = redirect_rig, "obj"
        data = rig.objects[key]
        first = owner_of(rig, key)
        asker = not_holding(rig, key)
        r = httpx.get(rig.object_url(asker, key), timeout=10)
        assert r.status_code == 307
        location = r.headers["location"]
        assert port_of(location) == rig.workers[first].port
        assert r.headers["x-amz-bucket-region"] == "us-east-1"
        assert b"<Code>TemporaryRedirect</Code>" in r.content
        assert f"<Endpoint>127.0.0.1:{rig.workers[first].port}</Endpoint>".encode() in r.content
        token = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
        assert {"x-s3cache-exp", "x-s3cache-user", "x-s3cache-sig"} <= token.keys()
        followed = httpx.get(location, timeout=30)
        assert followed.status_code == 200 and digest(followed.content) == digest(data)
        # the target holds the block now, and is the only one
        bid = rig.blocks(key)[0]
        assert bid in rig.on_disk(first)
        assert rig.wait_published(key)[bid] == {first}
        # every other worker sends a reader of a later block to that block's holder, keeping the range
        for index in range(1, 5):
            holders = rig.wait_published(key)[rig.blocks(key)[index]]
            for wid in IDS:
                lo, hi = index * BLOCK + 5, min(len(data), index * BLOCK + 300_000)
                r = httpx.get(rig.object_url(wid, key), headers={"range": f"bytes={lo}-{hi - 1}"}, timeout=10)
                if wid in holders:
                    assert r.status_code == 206 and r.content == data[lo:hi]
                    continue
                assert r.status_code == 307, (index, wid)
                assert port_of(r.headers["location"]) in {rig.workers[h].port for h in holders}
                again = httpx.get(r.headers["location"], headers={"range": f"bytes={lo}-{hi - 1}"}, timeout=10)
                assert again.status_code == 206 and again.content == data[lo:hi]
        # HEAD is redirected too, and answered where it lands
        asker = not_holding(rig, key)
        r = httpx.head(rig.object_url(asker, key), timeout=10)
        assert r.status_code == 307 and r.headers["x-amz-bucket-region"] == "us-east-1"
        r = httpx.head(rig.object_url(asker, key), follow_redirects=True, timeout=10)
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)

    def test_curl_follows_and_reads_right(self, redirect_rig: Rig, tmp_path: Path) -> None:
        rig = redirect_rig
        out = tmp_path / "out"
        followed = 0
        for wid in IDS:
            for key, data in rig.objects.items():
                url = f"{rig.url(wid)}/{rig.bucket}/{key.replace(' ', '%20').replace('+', '%2B')}"
                proc = subprocess.run(["curl", "-sSfL", "-o", str(out), "-w", "%{num_redirects}", url],
                                      check=True, capture_output=True, timeout=60)
                assert digest(out.read_bytes()) == digest(data), (wid, key)
                followed += int(proc.stdout)
            proc = subprocess.run(["curl", "-sSfL", "-r", "1048570-3145740", "-o", str(out), "-w", "%{num_redirects}",
                                   f"{rig.url(wid)}/{rig.bucket}/obj"], check=True, capture_output=True, timeout=60)
            assert out.read_bytes() == rig.objects["obj"][1048570:3145741]
            followed += int(proc.stdout)
        assert followed >= 3, "curl was never redirected: the test proved nothing"

    def test_httpx_follows_and_reads_right(self, redirect_rig: Rig) -> None:
        rig = redirect_rig
        fresh = f"fresh/{uuid.uuid4().hex}"
        data = os.urandom(2 * MiB + 3)
        s3_client(rig.url("w0")).put_object(Bucket=rig.bucket, Key=fresh, Body=data)
        rig.objects[fresh], rig.etags[fresh] = data, hashlib.md5(data).hexdigest()
        redirected = 0
        with httpx.Client(follow_redirects=True, timeout=30) as http:
            for wid in IDS:
                for key in rig.objects:
                    r = http.get(rig.object_url(wid, key))
                    assert r.status_code == 200 and digest(r.content) == digest(rig.objects[key]), (wid, key)
                    redirected += bool(r.history)
                    for hop in r.history:
                        assert hop.status_code == 307 and b"TemporaryRedirect" in hop.content
                r = http.get(rig.object_url(wid, fresh), headers={"range": "bytes=1000000-2097151"})
                assert r.status_code == 206 and r.content == data[1000000:2097152]
        assert redirected >= 4

    def test_s3fs_reads_right(self, redirect_rig: Rig) -> None:
        rig, key = redirect_rig, "s3fs.bin"
        data = rig.objects[key]
        asker = not_holding(rig, key)
        fs = s3fs.S3FileSystem(key="fsuser", secret="secret", skip_instance_cache=True, use_listings_cache=False,
                               client_kwargs={"endpoint_url": rig.url(asker), "region_name": "us-east-1"},
                               config_kwargs={"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}},
                               default_block_size=BLOCK)
        path = f"{rig.bucket}/{key}"
        assert fs.info(path)["size"] == len(data)
        assert digest(fs.cat_file(path)) == digest(data)
        assert fs.cat_file(path, start=BLOCK - 3, end=2 * BLOCK + 9) == data[BLOCK - 3:2 * BLOCK + 9]
        with fs.open(path, "rb") as fh:
            fh.seek(2 * BLOCK + 1)
            assert fh.read(500_000) == data[2 * BLOCK + 1:2 * BLOCK + 500_001]
        assert path in fs.ls(rig.bucket, detail=False)
        redirects = [a for a in rig.access(asker) if a[0] == "fsuser" and a[4] == 307]
        assert redirects, "s3fs was never redirected: the test proved nothing"
        landed = [a for wid in IDS if wid != asker for a in rig.access(wid) if a[0] == "fsuser" and a[4] in (200, 206)]
        assert landed, "the redirected requests keep the user (from the token)"

    def test_tampered_token_is_refused(self, redirect_rig: Rig) -> None:
        rig, key = redirect_rig, "obj"
        asker = not_holding(rig, key)
        r = httpx.get(rig.object_url(asker, key), headers={"authorization": "AWS alice:sig"}, timeout=10)
        assert r.status_code == 307
        parts = urlsplit(r.headers["location"])
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        assert query["x-s3cache-user"] == "alice"
        base = f"{parts.scheme}://{parts.netloc}"
        sig = query["x-s3cache-sig"]
        tampered = [
            {**query, "x-s3cache-sig": ("0" if sig[0] != "0" else "1") + sig[1:]},
            {**query, "x-s3cache-user": "mallory"},
            {**query, "x-s3cache-exp": str(int(query["x-s3cache-exp"]) + 3600)},
            {**query, "x-s3cache-exp": "1"},
        ]
        for q in tampered:
            bad = httpx.get(f"{base}{parts.path}?{urlencode(q)}", timeout=10)
            assert bad.status_code == 403 and b"<Code>AccessDenied</Code>" in bad.content, q
        other = httpx.get(f"{base}/{rig.bucket}/s3fs.bin?{parts.query}", timeout=10)  # another key's token
        assert other.status_code == 403 and b"AccessDenied" in other.content
        good = httpx.get(r.headers["location"], timeout=30)
        assert good.status_code == 200 and digest(good.content) == digest(rig.objects[key])

    def test_writes_and_bucket_calls_are_never_redirected(self, redirect_rig: Rig) -> None:
        rig = redirect_rig
        for wid in IDS:
            base = f"{rig.url(wid)}/{rig.bucket}"
            key = f"put/{wid}/{uuid.uuid4().hex}"
            data = os.urandom(BLOCK + 10)
            with httpx.Client(follow_redirects=False, timeout=30) as http:
                assert http.put(f"{base}/{key}", content=data).status_code == 200
                assert http.head(base).status_code == 200
                assert http.get(base, params={"list-type": "2"}).status_code == 200
                assert http.get(base, params={"location": ""}).status_code == 200
                assert http.get(base, params={"versioning": ""}).status_code == 200
                assert http.get(rig.url(wid)).status_code == 200
                assert http.get(f"{base}/{key}", params={"tagging": ""}).status_code == 200
                assert http.delete(f"{base}/{key}").status_code == 204
            s3 = s3_client(rig.url(wid))  # boto3 would fail on any 3xx
            s3.put_object(Bucket=rig.bucket, Key=key, Body=data)
            s3.head_bucket(Bucket=rig.bucket)
            assert s3.list_objects_v2(Bucket=rig.bucket, Prefix=f"put/{wid}/")["KeyCount"] == 1
            s3.copy_object(Bucket=rig.bucket, Key=key + ".copy", CopySource={"Bucket": rig.bucket, "Key": key})
            s3.delete_objects(Bucket=rig.bucket, Delete={"Objects": [{"Key": key}, {"Key": key + ".copy"}]})
        redirected = {a[1] for wid in IDS for a in rig.access(wid) if a[4] == 307}
        assert redirected <= {"GetObject", "HeadObject"}


# =================================================================================================
# auto mode
# =================================================================================================

AUTO_OBJECTS = {"obj": os.urandom(3 * MiB + 999), "s3fs.bin": os.urandom(2 * MiB + 1)}


@pytest.fixture(scope="class")
def auto_rig(tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> Iterator[Rig]:
    yield from make_rig(tmp_path_factory, origin, "auto", AUTO_OBJECTS)


class TestAutoMode:
    def test_boto3_is_never_redirected(self, auto_rig: Rig) -> None:
        rig = auto_rig
        statuses: list[int] = []

        def seen(response_dict: dict | None = None, **_: object) -> None:  # type: ignore[type-arg]
            if response_dict is not None:
                statuses.append(response_dict["status_code"])

        for wid in IDS:
            s3 = s3_client(rig.url(wid), "botouser")
            s3.meta.events.register("response-received.s3.*", seen)
            for key, data in rig.objects.items():
                assert digest(s3.get_object(Bucket=rig.bucket, Key=key)["Body"].read()) == digest(data)
                body = s3.get_object(Bucket=rig.bucket, Key=key, Range="bytes=1048000-2100000")["Body"].read()
                assert body == data[1048000:2100001]
                assert s3.head_object(Bucket=rig.bucket, Key=key)["ContentLength"] == len(data)
        assert statuses and all(s in (200, 206) for s in statuses), statuses
        deadline = time.monotonic() + 5  # a worker logs a request just after its last byte went out
        while len(logged := [a for wid in IDS for a in rig.access(wid) if a[0] == "botouser"]) < len(statuses):
            assert time.monotonic() < deadline, (logged, statuses)
            time.sleep(0.05)
        assert len(logged) == len(statuses) and not [a for a in logged if 300 <= a[4] < 400]

    def test_s3fs_is_redirected_and_reads_right(self, auto_rig: Rig) -> None:
        rig, key = auto_rig, "s3fs.bin"
        data = rig.objects[key]
        asker = not_holding(rig, key)
        fs = s3fs.S3FileSystem(key="fsuser", secret="secret", skip_instance_cache=True, use_listings_cache=False,
                               client_kwargs={"endpoint_url": rig.url(asker), "region_name": "us-east-1"},
                               config_kwargs={"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}})
        assert digest(fs.cat_file(f"{rig.bucket}/{key}")) == digest(data)
        assert fs.cat_file(f"{rig.bucket}/{key}", start=10, end=BLOCK + 10) == data[10:BLOCK + 10]
        assert [a for a in rig.access(asker) if a[0] == "fsuser" and a[4] == 307]

    def test_user_agent_decides(self, auto_rig: Rig) -> None:
        rig, key = auto_rig, "obj"
        read_all(rig, "w0", key)
        rig.wait_published(key)
        asker = not_holding(rig, key)
        url = rig.object_url(asker, key)
        for agent in ("aiobotocore/2.0 md/Botocore#1.35", "aws-sdk-cpp/1.11.0 Linux", "rclone/v1.66.0", "curl/8.5.0"):
            r = httpx.get(url, headers={"user-agent": agent}, timeout=10)
            assert r.status_code == 307, agent
            assert port_of(r.headers["location"]) in {rig.workers[h].port for h in rig.holders(rig.blocks(key)[0])}
        for agent in ("Boto3/1.35.0 md/Botocore#1.35.0", "aws-cli/2.15", "python-httpx/0.28", "s3torchconnector/1.2"):
            r = httpx.get(url, headers={"user-agent": agent}, timeout=30)
            assert r.status_code == 200 and digest(r.content) == digest(rig.objects[key]), agent


# =================================================================================================
# Redis unreachable from the start
# =================================================================================================


def test_workers_without_redis_serve_from_origin_and_say_why(
        tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> None:
    objects = {"obj": os.urandom(2 * MiB + 17), "small": os.urandom(300)}
    workdir = tmp_path_factory.mktemp("cluster-noredis")
    rig = Rig(origin, RedisServer(workdir), workdir, "proxy", f"c-noredis-{uuid.uuid4().hex[:8]}", objects, {})
    rig.etags = origin.seed(rig.bucket, objects)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    try:
        rig.workers = {wid: rig.worker(wid, redis_url=closed) for wid in ("w0", "w1")}
        start_all(list(rig.workers.values()))
        for wid in rig.workers:
            wait_http(rig.url(wid) + "/_s3cache/readyz")
        for _ in range(2):  # cold from the origin, then from the local cache
            for wid in rig.workers:
                for key in objects:
                    read_all(rig, wid, key)
                r = httpx.get(rig.object_url(wid, "obj"), headers={"range": "bytes=1000000-1100000"}, timeout=10)
                assert r.status_code == 206 and r.content == objects["obj"][1000000:1100001]
        for wid, w in rig.workers.items():
            log = w.log()
            assert f"Redis at {closed} unreachable" in log, f"{wid} did not log the outage:\n{log[-2000:]}"
            assert log.count("unreachable") == 1, "the outage is logged once, not per call"
    finally:
        for w in rig.workers.values():
            w.stop()
