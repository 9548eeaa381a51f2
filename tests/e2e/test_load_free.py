"""`s3cache load` and `s3cache free` against a real cluster: three workers, a real redis-server, nginx, moto behind a
proxy counting what reaches the origin.

- 200 objects loaded through nginx: every block fetched from the origin once and held by its HRW owner only; then
  every object read with no origin data request; a second run skips all 200 and says so;
- a load killed by PID part way resumes: the second run skips what the first finished and fetches none of it again;
- `free` drops a prefix's blocks from every worker's disk and from the placement map, leaves the others, and the
  next read of a freed object goes to the origin again; `--dry-run` then lists exactly the freed objects and
  fetches nothing.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cache.blocks.reader import block_id
from cache.cluster.placement import owner, placement_id
from rig.cluster import SECRET, WORKER_IDS, Cluster
from rig.origin import CountingProxy, MotoOrigin
from rig.processes import ROOT, Worker
from rig.redis import RedisServer
from tests.conftest import make_client

pytestmark = pytest.mark.slow

MiB = 1 << 20
BLOCK = MiB  # the rig's workers cut 1 MiB blocks
CLI = [sys.executable, "-m", "proxy.cli.main"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def seed(moto: MotoOrigin, bucket: str, objects: dict[str, bytes]) -> dict[str, str]:
    """Objects put straight at moto (the counting proxy does not see them); key -> ETag (unquoted)."""
    s3 = make_client(moto.url)
    return {key: s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"') for key, data in objects.items()}


def blocks_of(bucket: str, key: str, etag: str, size: int) -> list[tuple[str, str]]:
    """(block id, its HRW owner among the three workers) of every block of an object version."""
    return [(block_id(bucket, key, etag, i, BLOCK), owner(placement_id(bucket, key, i), WORKER_IDS) or "")
            for i in range(-(-size // BLOCK))]


def on_disk(rig: Cluster, wid: str) -> set[str]:
    return {p.name for p in (rig.workdir / wid / "blocks").glob("??/*") if len(p.name) == 64}


def read_all(url: str, bucket: str, objects: dict[str, bytes]) -> None:
    with httpx.Client(timeout=60) as http:
        for key, data in objects.items():
            r = http.get(f"{url}/{bucket}/{key}")
            assert r.status_code == 200 and hashlib.md5(r.content).digest() == hashlib.md5(data).digest(), key


@pytest.fixture(scope="module")
def cluster(counting: CountingProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("load")
    rig = Cluster("proxy", counting, workdir, RedisServer(workdir))
    try:
        yield rig.start()
    finally:
        rig.stop()


def test_two_hundred_objects_loaded_once_by_their_owners_then_read_with_no_origin_data_request(
        cluster: Cluster, counting: CountingProxy, moto_origin: MotoOrigin) -> None:
    bucket = cluster.bucket("warm")
    rng = random.Random(7)
    objects = {f"warm/{i:03d}.bin": os.urandom(rng.randrange(1, 48 << 10)) for i in range(196)}
    objects |= {f"warm/big-{i}.bin": os.urandom(2 * MiB + 1000 * i + 1) for i in range(4)}  # three blocks each
    outside = {"cold/untouched.bin": os.urandom(5000)}
    etags = seed(moto_origin, bucket, objects | outside)
    counting.reset()

    loaded = cli("load", f"s3://{bucket}/warm", "--endpoint", cluster.url, "--concurrency", "8", "--quiet")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    total = sum(map(len, objects.values()))
    assert re.match(rf"loaded 200 objects, {total} bytes of s3://{bucket}/warm in [\d.]+ s \([\d.]+ MB/s\); "
                    r"0 objects \(0 bytes\) already cached, skipped$", loaded.stdout.strip()), loaded.stdout

    gets = counting.object_gets()
    assert not [g for g in gets if "cold/" in g.path]
    per_object = Counter(g.path for g in gets)
    for key, data in objects.items():  # one origin request per block at most (the first opens the object)
        assert 1 <= per_object[f"/{bucket}/{key}"] <= -(-len(data) // BLOCK), key
    assert max(Counter((g.path, g.range) for g in gets).values()) == 1  # no range fetched twice
    disks = {wid: on_disk(cluster, wid) for wid in WORKER_IDS}
    for key, data in objects.items():
        for bid, wid in blocks_of(bucket, key, etags[key], len(data)):
            assert [w for w in WORKER_IDS if bid in disks[w]] == [wid], f"{key}: block held by its owner only"

    counting.reset()
    read_all(cluster.url, bucket, objects)
    assert counting.object_gets() == []

    again = cli("load", f"s3://{bucket}/warm", "--endpoint", cluster.url, "--quiet")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(f"; 200 objects ({total} bytes) already cached, skipped"), again.stdout
    assert again.stdout.startswith("loaded 0 objects, 0 bytes")
    assert counting.object_gets() == []


def test_free_drops_a_prefix_everywhere_and_dry_run_lists_it(
        cluster: Cluster, counting: CountingProxy, moto_origin: MotoOrigin) -> None:
    bucket = cluster.bucket("free")
    freed = {f"a/{i}.bin": os.urandom(MiB * (i % 3) + 777 * i + 1) for i in range(6)}
    kept = {f"b/{i}.bin": os.urandom(MiB + 99 * i) for i in range(3)}
    etags = seed(moto_origin, bucket, freed | kept)
    loaded = cli("load", f"s3://{bucket}/", "--endpoint", cluster.url, "--quiet")
    assert loaded.returncode == 0 and loaded.stdout.startswith("loaded 9 objects"), loaded.stdout + loaded.stderr
    freed_blocks = {bid for k, d in freed.items() for bid, _ in blocks_of(bucket, k, etags[k], len(d))}
    kept_blocks = {bid for k, d in kept.items() for bid, _ in blocks_of(bucket, k, etags[k], len(d))}
    redis = cluster.redis.client()
    time.sleep(0.2)  # the placement map is written in 50 ms batches
    assert all(redis.scard(f"s3cache:blk:{bid}") == 1 for bid in freed_blocks | kept_blocks)

    refused = cli("free", f"s3://{bucket}/a", "--endpoint", cluster.workers["w0"].url,
                  env={"S3CACHE_CLUSTER_SECRET": "not-the-secret"})
    assert refused.returncode == 1 and refused.stderr.count("403") == 3, refused.stderr
    secretless = cli("free", f"s3://{bucket}/a", "--endpoint", cluster.url, env={"S3CACHE_CLUSTER_SECRET": ""})
    assert secretless.returncode == 2 and secretless.stderr.startswith("s3cache free: the cluster secret is needed")

    done = cli("free", f"s3://{bucket}/a", "--endpoint", cluster.workers["w0"].url,
               env={"S3CACHE_CLUSTER_SECRET": SECRET})
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"^freed {len(freed_blocks)} blocks \(\d+ bytes\) of s3://{bucket}/a on 3 workers$",
                     done.stdout, re.MULTILINE), done.stdout
    for wid in WORKER_IDS:
        assert not on_disk(cluster, wid) & freed_blocks, wid
    assert kept_blocks <= set().union(*(on_disk(cluster, wid) for wid in WORKER_IDS))
    time.sleep(0.2)
    assert [bid for bid in freed_blocks if redis.exists(f"s3cache:blk:{bid}")] == []
    assert all(redis.scard(f"s3cache:blk:{bid}") == 1 for bid in kept_blocks)

    counting.reset()
    dry = cli("load", f"s3://{bucket}/", "--endpoint", cluster.url, "--dry-run", "--quiet")
    assert dry.returncode == 0, dry.stderr
    listed = dry.stdout.strip().splitlines()
    assert sorted(line.split("\t")[0] for line in listed[:-1]) == sorted(freed)
    assert listed[-1] == (f"would fetch 6 objects, {sum(map(len, freed.values()))} bytes of s3://{bucket}/; "
                          f"3 objects ({sum(map(len, kept.values()))} bytes) already cached")
    assert counting.object_gets() == []

    read_all(cluster.url, bucket, kept)
    assert counting.object_gets() == []
    read_all(cluster.url, bucket, {"a/4.bin": freed["a/4.bin"]})  # two blocks: both come from the origin again
    assert {g.path for g in counting.object_gets()} == {f"/{bucket}/a/4.bin"}


def test_an_interrupted_load_resumes_without_refetching_what_was_done(
        moto_origin: MotoOrigin, tmp_path: Path) -> None:
    slow = CountingProxy(moto_origin.port, latency_s=0.05).start()  # slow enough to stop part way
    rig = Cluster("proxy", slow, tmp_path, RedisServer(tmp_path))
    try:
        rig.start()
        bucket = rig.bucket("resume")
        objects = {f"r/{i:03d}": os.urandom(8000 + i) for i in range(200)}  # one block each
        etags = seed(moto_origin, bucket, objects)
        ids = {key: blocks_of(bucket, key, etags[key], len(data))[0][0] for key, data in objects.items()}
        slow.reset()
        first = subprocess.Popen([*CLI, "load", f"s3://{bucket}/r", "--endpoint", rig.url, "--concurrency", "2",
                                  "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while len(slow.object_gets()) < 60:
                assert first.poll() is None and time.monotonic() < deadline, "the load ended before it was stopped"
                time.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
        time.sleep(1.0)  # fills under way finish on the workers
        held = set().union(*(on_disk(rig, wid) for wid in WORKER_IDS))
        done = {key for key, bid in ids.items() if bid in held}
        assert 50 <= len(done) < 200, len(done)

        slow.reset()
        second = cli("load", f"s3://{bucket}/r", "--endpoint", rig.url, "--concurrency", "8", "--quiet")
        assert second.returncode == 0, second.stdout + second.stderr
        m = re.match(r"loaded (\d+) objects, \d+ bytes .*; (\d+) objects \(\d+ bytes\) already cached, skipped$",
                     second.stdout.strip())
        assert m is not None, second.stdout
        assert (int(m[1]), int(m[2])) == (200 - len(done), len(done))
        refetched = {g.path.split("/", 2)[2] for g in slow.object_gets()}
        assert refetched == set(objects) - done  # nothing that was done is fetched again
        assert set(ids.values()) <= set().union(*(on_disk(rig, wid) for wid in WORKER_IDS))
    finally:
        rig.stop()
        slow.stop()


def test_head_only_if_cached_on_one_worker(worker: Worker, backend: str, s3: Any, bucket: str) -> None:
    """One worker over a directory (its objects are local: always 200) or over an S3 origin (504 until read)."""
    data = os.urandom(MiB + 5)
    s3.put_object(Bucket=bucket, Key="k", Body=data)
    url = f"{worker.url}/{bucket}/k"
    before = httpx.head(url, headers={"cache-control": "only-if-cached"}, timeout=30)
    assert before.status_code == (200 if backend == "dir" else 504)
    assert before.headers["content-length"] == (str(len(data)) if backend == "dir" else "0")
    read_all(worker.url, bucket, {"k": data})
    after = httpx.head(url, headers={"cache-control": "only-if-cached"}, timeout=30)
    assert after.status_code == 200 and after.headers["content-length"] == str(len(data))
    assert after.headers["etag"] == httpx.head(url, timeout=30).headers["etag"]
