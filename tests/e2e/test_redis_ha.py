"""The cluster over Redis beyond one node: a real three-master Redis Cluster (``redis+cluster://``) and a real
Sentinel group (``redis+sentinel://``: a master, a replica, three sentinels), each with three real workers in
front of the session's moto origin (seen through its counting proxy).

Against each:
- placement: every block of a cold object read through every worker is held by one worker, its owner, and
  fetched from the origin once;
- invalidation with acknowledgement: a PUT through one worker is seen at once through the others, and every
  worker acknowledged it;
- membership: a worker killed with SIGKILL drops out of the live set (Redis's and every worker's).
Against Sentinel, a failover made by killing the master by its PID under read load: reads keep being served,
every worker reconnects to the new master and says so, writes acknowledged before it are there after it (their
generations are in the new master, their objects read back new), and the workers republish what they hold.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import random
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest
from botocore.config import Config

from cache.blocks.reader import block_id
from cache.cluster.connect import RedisTarget, parse, redact
from cache.cluster.placement import owner, placement_id
from rig.origin import ORIGIN_ENV, CountingProxy
from rig.processes import Worker, scrape
from rig.redis import RedisCluster, SentinelGroup

pytestmark = pytest.mark.slow

MiB = 1 << 20
BLOCK = MiB
SECRET = "redis-ha-secret"
IDS = ["w0", "w1", "w2"]
PASSWORD = "p@ss:w/rd%"  # the Redis nodes require it; in the URL it is percent-encoded
WORKER_ENV = {**ORIGIN_ENV, "S3CACHE_CLUSTER_HEARTBEAT_TTL_S": "1.5", "S3CACHE_CLUSTER_SECRET": SECRET}


# ---- the URL forms (no server needed) ----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "target"), [
    ("redis://:pw@10.0.0.5:6379/2", RedisTarget("redis", "redis://:pw@10.0.0.5:6379/2")),
    ("unix:///run/redis.sock?db=1", RedisTarget("redis", "unix:///run/redis.sock?db=1")),
    ("redis+sentinel://s0:26379,s1:26380,s2/s3cache",
     RedisTarget("sentinel", "redis+sentinel://s0:26379,s1:26380,s2/s3cache",
                 (("s0", 26379), ("s1", 26380), ("s2", 26379)), "s3cache", 0)),
    ("redis+sentinel://p%40ss@[::1]:5000/my%20master/3?sentinel_password=sp",
     RedisTarget("sentinel", "redis+sentinel://p%40ss@[::1]:5000/my%20master/3?sentinel_password=sp",
                 (("::1", 5000),), "my master", 3, None, "p@ss", "sp")),
    ("redis+sentinel://app:secret@h:1/svc/", RedisTarget("sentinel", "redis+sentinel://app:secret@h:1/svc/",
                                                        (("h", 1),), "svc", 0, "app", "secret")),
    ("redis+cluster://:pw@a:7000,b", RedisTarget("cluster", "redis+cluster://:pw@a:7000,b",
                                                 (("a", 7000), ("b", 6379)), password="pw")),
    ("redis+cluster://a:7000/0", RedisTarget("cluster", "redis+cluster://a:7000/0", (("a", 7000),))),
])
def test_the_url_forms(url: str, target: RedisTarget) -> None:
    assert parse(url) == target


@pytest.mark.parametrize(("url", "why"), [
    ("http://h:6379", "expected one of"),
    ("redis+sentinel://h:26379", "service_name"),
    ("redis+sentinel://h:26379/svc/x", "not a number"),
    ("redis+sentinel://h:26379/svc/0/more", "service_name"),
    ("redis+sentinel://pw@h:port/svc", "bad port"),
    ("redis+sentinel://h:99999/svc", "out of range"),
    ("redis+sentinel:///svc", "no host"),
    ("redis+sentinel://h,,k/svc", "empty host"),
    ("redis+sentinel://h/svc?ssl=1", "unknown option"),
    ("redis+cluster://a:1/2", "one database"),
    ("redis+cluster://a:1?x=1", "unknown option"),
])
def test_urls_that_are_refused_say_why_and_never_show_the_password(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        parse(url.replace("://", "://:hunter2@", 1) if "@" not in url else url)
    assert "hunter2" not in str(caught.value)


def test_redact_masks_every_password() -> None:
    assert redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redact("redis+sentinel://pw@a:1,b:2/s/0?sentinel_password=sp") == \
        "redis+sentinel://***@a:1,b:2/s/0?sentinel_password=***"
    assert redact("redis+cluster://a:1,b:2") == "redis+cluster://a:1,b:2"


# ---- real Redis Cluster and Sentinel ------------------------------------------------------------------------


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="tester", aws_secret_access_key="secret",
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


@dataclass
class Rig:
    kind: str  # "cluster" or "sentinel"
    redis: RedisCluster | SentinelGroup
    counting: CountingProxy
    origin_s3: Any
    workdir: Path
    bucket: str
    workers: dict[str, Worker] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)

    def worker(self, worker_id: str) -> Worker:
        workdir = self.workdir / worker_id
        workdir.mkdir(exist_ok=True)
        args = ["--data", str(workdir / "data"), "--origin", self.counting.url, "--cache-dir", str(workdir / "blocks"),
                "--block-size", "1M", "--cache-capacity", "256M", "--redis", self.redis.url,
                "--worker-id", worker_id, "--data-path", "proxy"]
        return Worker(args, workdir, env=dict(WORKER_ENV), backend="s3")

    def seed(self, key: str, data: bytes) -> None:
        """An object put straight at the origin (not counted, not through any worker)."""
        self.etags[key] = self.origin_s3.put_object(Bucket=self.bucket, Key=key, Body=data)["ETag"].strip('"')
        self.data[key] = data

    def url(self, worker_id: str, key: str) -> str:
        return f"{self.workers[worker_id].url}/{self.bucket}/{key}"

    def read(self, worker_id: str, key: str) -> bytes:
        r = httpx.get(self.url(worker_id, key), timeout=30)
        assert r.status_code == 200, f"{key} through {worker_id}: {r.status_code} {r.text[:300]}"
        return r.content

    def blocks(self, key: str) -> list[str]:
        return [block_id(self.bucket, key, self.etags[key], i, BLOCK) for i in range(-(-len(self.data[key]) // BLOCK))]

    def owner(self, key: str, index: int, ids: list[str] = IDS) -> str:
        return owner(placement_id(self.bucket, key, index), ids) or ""

    def client(self) -> Any:
        """A client of the data nodes: the cluster (following slots), or the master Sentinel names now."""
        return self.redis.client()

    def holders(self, key: str) -> dict[str, set[str]]:
        """Block id -> the workers the placement map lists as holding it."""
        client = self.client()
        try:
            return {bid: set(client.smembers(f"s3cache:blk:{bid}")) for bid in self.blocks(key)}
        finally:
            client.close()

    def registered(self) -> list[str]:
        client = self.client()
        try:
            return sorted(client.zrange("s3cache:workers", 0, -1))
        finally:
            client.close()

    def live(self, worker_id: str) -> str:
        """The last live set a worker logged."""
        lines = re.findall(r"live workers: (.*)$", self.workers[worker_id].log(), re.MULTILINE)
        return lines[-1] if lines else ""

    def wait_membership(self, ids: list[str], timeout_s: float = 20.0) -> None:
        want = ", ".join(sorted(ids))
        running = [wid for wid, w in self.workers.items() if w.proc is not None]
        until(lambda: all(self.live(wid) == want for wid in running), timeout_s,
              f"membership did not settle on {want}: {[self.live(w) for w in running]}\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        lines = []
        for wid, w in self.workers.items():
            lines += [f"{wid}: {line}" for line in w.log().splitlines()
                      if " WARNING " in line or " ERROR " in line or "live workers" in line or "Redis at" in line]
        return "\n".join(lines[-60:])

    def stop(self) -> None:
        for w in self.workers.values():
            w.stop()
        self.redis.stop()


def start_all(workers: list[Worker]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        for future in [pool.submit(w.start) for w in workers]:
            future.result()


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, counting: CountingProxy,
        origin_s3: Any) -> Iterator[Rig]:
    kind = request.param
    workdir = tmp_path_factory.mktemp(f"redis-ha-{kind}")
    bucket = f"ha-{kind}-{uuid.uuid4().hex[:8]}"
    origin_s3.create_bucket(Bucket=bucket)
    redis = RedisCluster(workdir / "redis", PASSWORD) if kind == "cluster" else SentinelGroup(workdir / "redis", PASSWORD)
    the_rig = Rig(kind, redis, counting, origin_s3, workdir, bucket)
    try:
        redis.start()
        the_rig.workers = {wid: the_rig.worker(wid) for wid in IDS}
        start_all(list(the_rig.workers.values()))
        the_rig.wait_membership(IDS)
        yield the_rig
    finally:
        the_rig.stop()


def test_the_workers_joined_through_the_url_and_never_show_its_password(rig: Rig) -> None:
    assert quote(PASSWORD, safe="") in rig.redis.url
    shown = redact(rig.redis.url)
    assert "***@127.0.0.1:" in shown and quote(PASSWORD, safe="") not in shown
    for wid in IDS:
        log = rig.workers[wid].log()
        assert f"Redis at {shown} reachable: joined as {wid} (master 127.0.0.1:" in log
        assert PASSWORD not in log and quote(PASSWORD, safe="") not in log
        status = httpx.get(f"{rig.workers[wid].url}/_s3cache/status", timeout=10)
        assert status.status_code == 200 and status.json()["cluster"]["redis"] == shown
        assert quote(PASSWORD, safe="") not in status.text and PASSWORD not in status.text
    assert rig.registered() == IDS


def test_each_block_is_held_by_its_owner_alone_and_fetched_from_the_origin_once(rig: Rig) -> None:
    # A key whose seven blocks do not all fall to one worker (the bucket's name is random): the spread is shown.
    key = next(k for k in (f"cold/7-blocks-{n}" for n in range(100)) if len({rig.owner(k, i) for i in range(7)}) > 1)
    rig.seed(key, os.urandom(6 * MiB + 12345))
    rig.counting.reset()
    with concurrent.futures.ThreadPoolExecutor(len(IDS)) as pool:  # every worker reads it cold at once
        reads = {wid: pool.submit(rig.read, wid, key) for wid in IDS}
        for wid, future in reads.items():
            assert digest(future.result()) == digest(rig.data[key]), wid
    time.sleep(0.3)  # a late duplicate fetch would show up here
    spans = [f"bytes={i * BLOCK}-{min((i + 1) * BLOCK, len(rig.data[key])) - 1}" for i in range(7)]
    # A GET without a range is the cold read of the whole object, cut after block 0.
    gets = sorted(g.range or spans[0] for g in rig.counting.object_gets(f"/{rig.bucket}/{key}"))
    assert gets == sorted(spans), f"one origin fetch per block\n{rig.diagnostics()}"
    want = {bid: {rig.owner(key, i)} for i, bid in enumerate(rig.blocks(key))}
    until(lambda: rig.holders(key) == want, 5, f"placement map {rig.holders(key)} != {want}")
    assert len({holder for holders in want.values() for holder in holders}) > 1  # spread, not all on one worker
    if isinstance(rig.redis, RedisCluster):  # the keys are spread over the cluster's three masters
        for port in rig.redis.ports:
            with rig.redis.node_client(port) as node:
                assert node.dbsize() > 0, f"nothing on the master on {port}"


def test_a_put_through_one_worker_is_seen_at_once_through_the_others(rig: Rig) -> None:
    key = "mutable"
    rig.seed(key, os.urandom(MiB + 777))
    for wid in IDS:  # every worker has the old version's metadata (trusted for a minute) and blocks
        assert digest(rig.read(wid, key)) == digest(rig.data[key])
    before = {wid: scrape(rig.workers[wid].url) for wid in IDS}
    for n, writer in enumerate(IDS):
        data = os.urandom(MiB + 1000 + n)
        s3_client(rig.workers[writer].url).put_object(Bucket=rig.bucket, Key=key, Body=data)
        for reader in IDS:
            assert digest(rig.read(reader, key)) == digest(data), f"written through {writer}, read through {reader}"
    for wid in IDS:
        after = scrape(rig.workers[wid].url)
        published = after[("s3cache_invalidations_total", ())] - before[wid][("s3cache_invalidations_total", ())]
        missed = (after[("s3cache_invalidations_unacknowledged_total", ())]
                  - before[wid][("s3cache_invalidations_unacknowledged_total", ())])
        assert (published, missed) == (1, 0), f"{wid}: every worker acknowledged its write\n{rig.diagnostics()}"


def test_a_killed_worker_drops_out(rig: Rig) -> None:
    extra = rig.workers["w3"] = rig.worker("w3")
    try:
        extra.start()
        rig.wait_membership([*IDS, "w3"])
        assert rig.registered() == [*IDS, "w3"]
        extra.stop(signal.SIGKILL)
        until(lambda: rig.registered() == IDS, 10, f"w3 still registered: {rig.registered()}")
        rig.wait_membership(IDS)
    finally:
        extra.stop()
        del rig.workers["w3"]
    key = "after-w3"
    rig.seed(key, os.urandom(2 * MiB + 5))
    for wid in IDS:
        assert digest(rig.read(wid, key)) == digest(rig.data[key])


def test_a_sentinel_failover_under_read_load(rig: Rig) -> None:
    if not isinstance(rig.redis, SentinelGroup):
        pytest.skip("Sentinel only: a Redis Cluster without replicas has no failover")
    group = rig.redis
    warm = {"ha/a": os.urandom(3 * MiB + 11), "ha/b": os.urandom(2 * MiB + 22), "ha/small": os.urandom(5000)}
    for key, data in warm.items():
        rig.seed(key, data)
        for wid in IDS:
            assert digest(rig.read(wid, key)) == digest(data)
    until(lambda: all(all(rig.holders(key).values()) for key in warm), 5, "the warm blocks were not published")
    # Writes acknowledged just before the failover: through each worker, a new version of an object all three read.
    written = {}
    for wid in IDS:
        key = f"ha/put-{wid}"
        rig.seed(key, os.urandom(MiB + 33))
        for reader in IDS:
            rig.read(reader, key)
        written[key] = os.urandom(MiB + 44)
        s3_client(rig.workers[wid].url).put_object(Bucket=rig.bucket, Key=key, Body=written[key])
    with group.client() as master:
        generations = {key: master.get(f"s3cache:gen:{{{rig.bucket}/{key}}}") for key in written}
        assert all(generations.values()), generations
        assert master.info("replication")["connected_slaves"] == 1
        # each write waited for the replica to have it (WAIT 1) before it was answered
        assert master.info("commandstats")["cmdstat_wait"]["calls"] >= len(written)

    served: list[float] = []
    failed: list[tuple[float, str]] = []
    stop = threading.Event()

    def read_loop() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                wid, key = random.choice(IDS), random.choice(list(warm))
                try:
                    r = http.get(rig.url(wid, key))
                    if r.status_code == 200 and digest(r.content) == digest(warm[key]):
                        served.append(time.monotonic())
                    else:
                        failed.append((time.monotonic(), f"{key} via {wid}: {r.status_code} {r.content[:200]!r}"))
                except httpx.HTTPError as exc:
                    failed.append((time.monotonic(), f"{key} via {wid}: {exc!r}"))

    logged = {wid: len(rig.workers[wid].log()) for wid in IDS}
    threads = [threading.Thread(target=read_loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        old = group.kill_master()
        killed = time.monotonic()
        new = group.wait_failover(old)
        promoted = time.monotonic()

        def rejoined(wid: str) -> bool:
            return f"joined as {wid} (master 127.0.0.1:{new})" in rig.workers[wid].log()[logged[wid]:]
        until(lambda: all(rejoined(wid) for wid in IDS), 20, f"not every worker rejoined\n{rig.diagnostics()}")
        until(lambda: rig.registered() == IDS, 10, f"membership in the new master: {rig.registered()}")
        # each worker republished what it holds: the new master's placement map lists every warm block's owner
        until(lambda: all(all(rig.holders(key).values()) for key in warm), 10,
              f"placement map not republished: {[rig.holders(k) for k in warm]}")
        recovered = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    outage = [s for s in served if killed <= s <= promoted]
    print(f"failover {old} -> {new}: promoted {promoted - killed:.2f}s after the kill, placement republished "
          f"{recovered - killed:.2f}s after; {len(served)} reads served ({len(outage)} while no master was "
          f"named), {len(failed)} failed")
    assert failed == [], f"reads failed during the failover: {failed[:5]}\n{rig.diagnostics()}"
    assert outage, "no read was served between the kill and the promotion: nothing was shown"
    for wid in IDS:
        since = rig.workers[wid].log()[logged[wid]:]
        assert f"the master is now 127.0.0.1:{new} (was 127.0.0.1:{old})" in since, since[-2000:]
    for key in warm:
        for i, (bid, holders) in enumerate(rig.holders(key).items()):
            assert rig.owner(key, i) in holders, (key, bid, holders)
    # No acknowledged write was lost: the generations the old master raised are in the new one, and every worker
    # reads the new versions.
    with group.client() as master:
        assert {key: master.get(f"s3cache:gen:{{{rig.bucket}/{key}}}") for key in written} == generations
    for key, data in written.items():
        for wid in IDS:
            assert digest(rig.read(wid, key)) == digest(data), f"{key} through {wid} after the failover"
    # And writes go on through the new master: a PUT through one worker is seen at once through the others.
    key = "ha/put-w0"
    data = os.urandom(MiB + 55)
    s3_client(rig.workers["w1"].url).put_object(Bucket=rig.bucket, Key=key, Body=data)
    for wid in IDS:
        assert digest(rig.read(wid, key)) == digest(data), f"written after the failover, read through {wid}"
